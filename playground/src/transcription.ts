// TextStream Handler (Transcription), contract snippet: topic `lk.transcription`.
import type { Room } from 'livekit-client';
import { isAgentParticipant } from './rpc';

export type Speaker = 'user' | 'agent';

export interface TranscriptSegment {
  segmentId: string;
  speaker: Speaker;
  participantIdentity: string;
  text: string;
  final: boolean;
}

/**
 * The agent publishes both sides: the user's words (speech-to-text, one stream per interim or
 * final result, each carrying the whole text so far) and its own (one stream per segment, text
 * appended as it is spoken). Streams of one utterance share `lk.segment_id`, so the UI keeps one
 * line per segment and replaces its text in place.
 */
export function registerTranscriptionHandler(
  room: Room,
  onSegment: (segment: TranscriptSegment) => void,
): void {
  room.registerTextStreamHandler('lk.transcription', async (reader, participantInfo) => {
    const isTranscription = reader.info?.attributes?.['lk.transcribed_track_id'];
    const isFinal = reader.info?.attributes?.['lk.transcription_final'] === 'true';
    const segmentId = reader.info?.attributes?.['lk.segment_id'];

    if (!isTranscription) return;

    // livekit-client 2.x passes `{identity}`; the contract calls it `participantIdentity`.
    const participantIdentity = participantInfo.identity;
    // Transcripts come from the agent only: its own speech, or the user's sent as the user
    // (livekit-server lets only an agent send on another's behalf). Anything else is ignored.
    const fromSelf = participantIdentity === room.localParticipant.identity;
    if (!fromSelf && !isAgentParticipant(room.remoteParticipants.get(participantIdentity))) {
      console.warn(`ignored a transcript from ${participantIdentity}: not the agent`);
      // Read it to its end, keeping nothing, so its chunks do not pile up in the reader.
      for await (const chunk of reader) void chunk;
      return;
    }
    // The user's transcript is sent by the agent on the user's behalf: recognise it by the
    // sender identity, or by the transcribed track being one of our own.
    const speaker: Speaker =
      participantIdentity === room.localParticipant.identity ||
      room.localParticipant.trackPublications.has(isTranscription)
        ? 'user'
        : 'agent';
    const segment = {
      segmentId: segmentId ?? reader.info.id,
      speaker,
      participantIdentity,
    };

    let fullText = '';
    for await (const chunk of reader) {
      fullText += chunk;
      onSegment({ ...segment, text: fullText, final: isFinal });
    }
    // A streamed segment (the agent's speech) is marked final in the stream's trailer, which
    // livekit-client merges into `reader.info.attributes` when the stream ends.
    const finalAtEnd = reader.info.attributes?.['lk.transcription_final'] === 'true';
    onSegment({ ...segment, text: fullText, final: isFinal || finalAtEnd });
  });
}

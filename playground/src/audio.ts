// Audio Context (Browser Policy Bypass), contract snippet, and playback of the agent's voice.
import { RoomEvent, Track, type Room } from 'livekit-client';

/** Browsers start audio suspended until the user interacts with the page: resume on the first
 * click, touch or key. */
export function resumeAudioOnFirstInteraction(): void {
  const events = ['click', 'touchstart', 'keydown'] as const;
  const handleInteraction = () => {
    const ctx = new AudioContext();
    if (ctx.state === 'suspended') void ctx.resume();
    events.forEach((e) => document.removeEventListener(e, handleInteraction));
  };
  events.forEach((e) => document.addEventListener(e, handleInteraction));
}

/** Attach every subscribed remote audio track (the agent's voice) to an <audio> element. */
export function playRemoteAudio(room: Room, container: HTMLElement): void {
  room.on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
    if (track.kind !== Track.Kind.Audio) return;
    const element = track.attach();
    element.dataset.participant = participant.identity;
    container.appendChild(element);
  });
  room.on(RoomEvent.TrackUnsubscribed, (track) => {
    track.detach().forEach((element) => element.remove());
  });
}

/**
 * Avatar playground: the frontend contract (livekit-integration.md), snippet by snippet, in plain
 * TypeScript with `livekit-client`. Copy the module of the snippet you need:
 *
 *   Contract snippet                             Module            What to copy
 *   -------------------------------------------  ----------------  -------------------------------
 *   Environment Variables                        config.ts         loadConfig(): ./config.json at
 *                                                                  run time, VITE_* as fallback
 *   Token Generation                             token.ts          fetchToken(), newRoomName(),
 *                                                                  newIdentity()
 *   RPC Handler Registration (Duplicate          agentState.ts     registerAgentStateHandler():
 *     Prevention)                                                  flag-guarded, before connect()
 *   RPC Call with Retry                          rpc.ts            performRpc(): 10 x 500 ms
 *   TextStream Handler (Transcription)           transcription.ts  registerTranscriptionHandler()
 *   Audio Context (Browser Policy Bypass)        audio.ts          resumeAudioOnFirstInteraction(),
 *                                                                  playRemoteAudio()
 *
 * This file only wires them to the page (ui/*). The LiveKit URL: `livekitUrl` of config.json (or
 * VITE_LIVEKIT_URL) when set, because whoever serves the page knows the address this browser
 * can reach; else the `url` the token server returns (its LIVEKIT_URL).
 *
 * For tests and the devtools console, `window.__playground` records the states, transcripts,
 * RPC calls and errors the page saw (debug.ts).
 */
import { ConnectionState, DisconnectReason, Room, RoomEvent } from 'livekit-client';

import { registerAgentStateHandler, type AgentStateEvent } from './agentState';
import { playRemoteAudio, resumeAudioOnFirstInteraction } from './audio';
import { loadConfig } from './config';
import { createDebugState, recordSegment, resetSession } from './debug';
import { DEMO_FAQS } from './demoFaqs';
import { DEFAULT_LANGUAGE, LANGUAGES } from './languages';
import { describeError, findAgent, isAgentParticipant, performRpc } from './rpc';
import { fetchToken, newIdentity, newRoomName } from './token';
import { registerTranscriptionHandler, type TranscriptSegment } from './transcription';
import { Avatar } from './ui/avatar';
import { EventLog } from './ui/eventLog';
import { FaqEditor } from './ui/faqEditor';
import { TranscriptView } from './ui/transcriptView';
import './style.css';

function $<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing from index.html`);
  return element as T;
}

const ui = {
  connection: $('connection'),
  connect: $<HTMLButtonElement>('connect'),
  disconnect: $<HTMLButtonElement>('disconnect'),
  mic: $<HTMLButtonElement>('mic'),
  interrupt: $<HTMLButtonElement>('interrupt'),
  getState: $<HTMLButtonElement>('get-state'),
  startAudio: $<HTMLButtonElement>('start-audio'),
  sendForm: $<HTMLFormElement>('send-form'),
  text: $<HTMLInputElement>('text'),
  send: $<HTMLButtonElement>('send'),
  agentStatus: $('agent-status'),
  language: $<HTMLSelectElement>('language'),
  applyFaqs: $<HTMLButtonElement>('apply-faqs'),
};

const debug = createDebugState();
const eventLog = new EventLog($('log'), (entry) => debug.log.push(entry));
const avatar = new Avatar($('avatar'));
const transcript = new TranscriptView($('transcript'));
const faqEditor = new FaqEditor($('faqs'), $<HTMLButtonElement>('add-faq'), DEMO_FAQS);

for (const { code, nativeName } of LANGUAGES) {
  ui.language.add(new Option(`${nativeName} (${code})`, code));
}
ui.language.value = DEFAULT_LANGUAGE;

function showError(context: string, error: unknown): void {
  const message = `${context}: ${describeError(error)}`;
  debug.errors.push(message);
  eventLog.add('error', message);
}

// --- One Room for the page's lifetime; handlers registered once, BEFORE connecting -------------

const room = new Room({ adaptiveStream: true, dynacast: true });
let lastSeq = 0;

function onAgentState(event: AgentStateEvent): void {
  debug.states.push({ ...event, receivedAt: Date.now() });
  if (event.seq <= lastSeq) {
    eventLog.add('state', `#${event.seq} ${event.state} (stale, ignored)`);
    return;
  }
  lastSeq = event.seq;
  avatar.set(event.state);
  eventLog.add('state', `#${event.seq} ${event.previous ?? '-'} → ${event.state}`);
}

function onTranscript(segment: TranscriptSegment): void {
  recordSegment(debug, segment);
  transcript.upsert(segment);
}

registerAgentStateHandler(room, onAgentState);
registerTranscriptionHandler(room, onTranscript);
playRemoteAudio(room, $('audio'));
resumeAudioOnFirstInteraction();

room
  .on(RoomEvent.ConnectionStateChanged, (state: ConnectionState) => {
    debug.connection = state;
    ui.connection.dataset.state = state;
    ui.connection.textContent = state;
    eventLog.add('info', `connection: ${state}`);
    updateControls();
  })
  .on(RoomEvent.ParticipantConnected, (participant) => {
    eventLog.add('info', `joined: ${participant.identity}`);
    updateControls();
  })
  .on(RoomEvent.ParticipantDisconnected, (participant) => {
    eventLog.add('info', `left: ${participant.identity}`);
    if (isAgentParticipant(participant)) avatar.set('disconnected');
    updateControls();
  })
  .on(RoomEvent.Disconnected, (reason) => {
    avatar.set('disconnected');
    eventLog.add('info', `disconnected (${reason === undefined ? 'no reason' : DisconnectReason[reason]})`);
  })
  .on(RoomEvent.AudioPlaybackStatusChanged, () => {
    ui.startAudio.hidden = room.canPlaybackAudio;
  })
  .on(RoomEvent.MediaDevicesError, (error) => showError('media devices', error))
  .on(RoomEvent.LocalTrackPublished, updateControls)
  .on(RoomEvent.TrackMuted, updateControls)
  .on(RoomEvent.TrackUnmuted, updateControls);

function updateControls(): void {
  const connected = room.state === ConnectionState.Connected;
  const micOn = connected && room.localParticipant.isMicrophoneEnabled;
  ui.connect.disabled = room.state !== ConnectionState.Disconnected;
  ui.disconnect.disabled = room.state === ConnectionState.Disconnected;
  ui.mic.disabled = !connected;
  ui.mic.dataset.mic = micOn ? 'on' : 'off';
  ui.mic.textContent = micOn ? 'Mute mic' : 'Unmute mic';
  for (const button of [ui.interrupt, ui.getState, ui.send, ui.applyFaqs]) {
    button.disabled = !connected;
  }
  const agent = connected ? findAgent(room) : undefined;
  debug.agent = agent?.identity ?? null;
  ui.agentStatus.textContent = connected
    ? `${room.name} · ${room.localParticipant.identity} · ${agent ? agent.identity : 'waiting for the agent…'}`
    : '';
}

// --- Connect: token (with the page's language and FAQs), then room.connect, then the mic -------

const configReady = loadConfig();

async function connect(): Promise<void> {
  ui.connect.disabled = true;
  try {
    const config = await configReady;
    const request = {
      room: newRoomName(config.roomPrefix),
      identity: newIdentity(),
      metadata: { language: ui.language.value, faqs: faqEditor.read() },
    };
    eventLog.add('info', `token for ${request.identity} in ${request.room}`);
    const token = await fetchToken(config.tokenUrl, request);
    const url = config.livekitUrl || token.url;
    lastSeq = 0;
    transcript.clear();
    avatar.set('initializing');
    resetSession(debug, token.room, token.identity);
    await room.connect(url, token.token);
    eventLog.add('info', `connected to ${url}`);
    await room.localParticipant.setMicrophoneEnabled(true);
  } catch (error) {
    showError('connect', error);
    if (room.state === ConnectionState.Disconnected) avatar.set('disconnected');
  } finally {
    updateControls();
  }
}

// --- RPC calls to the agent: every call and its outcome goes to the log ------------------------

async function callAgent(method: string, payload: object): Promise<string | undefined> {
  const record: (typeof debug.rpcs)[number] = { method, payload };
  debug.rpcs.push(record);
  eventLog.add('rpc', `→ ${method} ${JSON.stringify(payload)}`);
  try {
    const response = await performRpc(room, method, payload);
    record.response = response;
    eventLog.add('rpc', `← ${method} ${response}`);
    return response;
  } catch (error) {
    record.error = describeError(error);
    showError(method, error);
    return undefined;
  }
}

let typedCount = 0;

ui.connect.addEventListener('click', () => void connect());
ui.disconnect.addEventListener('click', () => void room.disconnect());
ui.mic.addEventListener('click', async () => {
  try {
    await room.localParticipant.setMicrophoneEnabled(!room.localParticipant.isMicrophoneEnabled);
  } catch (error) {
    showError('microphone', error);
  }
  updateControls();
});
ui.startAudio.addEventListener('click', () => void room.startAudio());
ui.interrupt.addEventListener('click', () => void callAgent('interrupt', {}));
ui.getState.addEventListener('click', async () => {
  const response = await callAgent('get_state', {});
  if (response) ui.agentStatus.textContent = `get_state: ${response}`;
});
ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || room.state !== ConnectionState.Connected) return;
  ui.text.value = '';
  // Typed text is not transcribed by the agent: show it ourselves, marked as typed.
  transcript.upsert(
    {
      segmentId: `typed-${++typedCount}`,
      speaker: 'user',
      participantIdentity: room.localParticipant.identity,
      text,
      final: true,
    },
    { typed: true },
  );
  void callAgent('send_text', { text });
});
ui.language.addEventListener('change', () => {
  if (room.state === ConnectionState.Connected) {
    void callAgent('set_language', { language: ui.language.value });
  }
});
ui.applyFaqs.addEventListener('click', () => void callAgent('set_faqs', { faqs: faqEditor.read() }));

void configReady.then((config) => {
  const livekit = config.livekitUrl || '(from the token response)';
  eventLog.add('info', `config: token ${config.tokenUrl}, livekit ${livekit}, ${config.roomPrefix}-*`);
});
updateControls();

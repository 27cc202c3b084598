// `window.__playground`: what the page saw, for tests and for poking at in the devtools console.
import type { AgentStateEvent } from './agentState';
import type { LogEntry } from './ui/eventLog';
import type { TranscriptSegment } from './transcription';

export interface PlaygroundDebug {
  /** Every `agent_state_changed` received, in arrival order, with the local receive time. */
  states: (AgentStateEvent & { receivedAt: number })[];
  /** One entry per segment, updated in place like the transcript on screen. */
  transcripts: TranscriptSegment[];
  /** Every error shown to the user. */
  errors: string[];
  /** Every RPC call made to the agent, with its response or error. */
  rpcs: { method: string; payload: object; response?: string; error?: string }[];
  log: LogEntry[];
  connection: string;
  room: string | null;
  identity: string | null;
  /** The agent's identity once it is in the room. */
  agent: string | null;
}

declare global {
  interface Window {
    __playground: PlaygroundDebug;
  }
}

export function createDebugState(): PlaygroundDebug {
  const debug: PlaygroundDebug = {
    states: [],
    transcripts: [],
    errors: [],
    rpcs: [],
    log: [],
    connection: 'disconnected',
    room: null,
    identity: null,
    agent: null,
  };
  window.__playground = debug;
  return debug;
}

/** Forget the previous session's states and transcripts (a new agent session restarts seq). */
export function resetSession(debug: PlaygroundDebug, room: string, identity: string): void {
  debug.states.length = 0;
  debug.transcripts.length = 0;
  debug.room = room;
  debug.identity = identity;
  debug.agent = null;
}

export function recordSegment(debug: PlaygroundDebug, segment: TranscriptSegment): void {
  const index = debug.transcripts.findIndex((s) => s.segmentId === segment.segmentId);
  if (index === -1) debug.transcripts.push(segment);
  else if (!(debug.transcripts[index]?.final && !segment.final)) debug.transcripts[index] = segment;
}

// RPC Handler Registration (Duplicate Prevention), contract snippet: agent -> user
// `agent_state_changed` with `{state, previous, seq, timestamp}`.
import { RpcError, type Room, type RpcInvocationData } from 'livekit-client';
import { isAgentParticipant } from './rpc';

export const AGENT_STATES = ['initializing', 'idle', 'listening', 'thinking', 'speaking'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

export interface AgentStateEvent {
  state: AgentState;
  previous: AgentState | null;
  /** Strictly increasing per agent session: an event with a lower seq is stale. */
  seq: number;
  /** Unix time in milliseconds when the state changed on the agent. */
  timestamp: number;
}

function isAgentState(value: unknown): value is AgentState {
  return typeof value === 'string' && (AGENT_STATES as readonly string[]).includes(value);
}

function parseAgentStateEvent(raw: string): AgentStateEvent {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new RpcError(400, 'payload is not JSON');
  }
  const event = data as Partial<AgentStateEvent> | null;
  if (
    !event ||
    !isAgentState(event.state) ||
    !(event.previous === null || event.previous === undefined || isAgentState(event.previous)) ||
    typeof event.seq !== 'number'
  ) {
    throw new RpcError(400, 'expected {state, previous, seq, timestamp}');
  }
  return {
    state: event.state,
    previous: event.previous ?? null,
    seq: event.seq,
    timestamp: typeof event.timestamp === 'number' ? event.timestamp : Date.now(),
  };
}

// The contract's `useRef(false)`: one flag for the page's lifetime. livekit-client throws when a
// method is registered twice, and the one Room of this page is reused across reconnects.
let rpcHandlerRegistered = false;

/**
 * Register the handler on the Room BEFORE `room.connect()`: the agent announces its first state
 * as soon as it joins, and a call that finds no handler fails with 1400 (unsupported method).
 *
 * The contract's `localParticipant.registerRpcMethod` is a deprecated alias of
 * `room.registerRpcMethod` in livekit-client 2.x; both land in the same handler table.
 */
export function registerAgentStateHandler(
  room: Room,
  onState: (event: AgentStateEvent) => void,
): void {
  if (rpcHandlerRegistered) return;

  const handleRpc = async (data: RpcInvocationData): Promise<string> => {
    // Only the agent tells us its state; anyone else in the room is refused and ignored. A caller
    // we do not know yet (its call overtook its join, e.g. after a reconnect) is told to retry.
    const caller = room.remoteParticipants.get(data.callerIdentity);
    if (caller === undefined) {
      throw new RpcError(409, 'caller not known yet; retry');
    }
    if (!isAgentParticipant(caller)) {
      console.warn(`ignored agent_state_changed from ${data.callerIdentity}: not the agent`);
      throw new RpcError(403, 'only the agent may call agent_state_changed');
    }
    const event = parseAgentStateEvent(data.payload);
    onState(event);
    return ''; // RPC response
  };

  room.registerRpcMethod('agent_state_changed', handleRpc);
  rpcHandlerRegistered = true;
}

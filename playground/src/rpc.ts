// RPC Call with Retry, contract snippet: user -> agent methods, 10 attempts 500 ms apart.
import {
  ConnectionState,
  RpcError,
  type Participant,
  type RemoteParticipant,
  type Room,
} from 'livekit-client';

export const AGENT_IDENTITY_PREFIX = 'agent';

const MAX_RETRIES = 10;
const RETRY_DELAY_MS = 500;

// The agent's own answers (bad payload, forbidden, internal error) will not change on a retry;
// everything else (no agent yet, 1400 method not registered yet, 409 not ready, timeouts) may.
// 429 (over the method's per-session budget) is final too: its message says when to retry.
const FINAL_ERROR_CODES = new Set([
  400,
  403,
  429,
  500,
  RpcError.ErrorCode.REQUEST_PAYLOAD_TOO_LARGE,
]);

/**
 * The agent: the contract's identity prefix AND the participant kind, which livekit-server sets
 * from the agent framework's token. The prefix alone could be worn by anyone holding a token
 * from elsewhere; its state calls and transcripts would then be taken as the agent's.
 */
export function isAgentParticipant(participant: Participant | undefined): boolean {
  return (
    participant !== undefined &&
    participant.identity.startsWith(AGENT_IDENTITY_PREFIX) &&
    participant.isAgent
  );
}

export function findAgent(room: Room): RemoteParticipant | undefined {
  return Array.from(room.remoteParticipants.values()).find(isAgentParticipant);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Call `method` on the agent and return its (JSON string) response.
 *
 * Differences from the contract snippet, so a page can tell the user what happened: the agent is
 * looked up on every attempt (it may join a moment after us) instead of returning silently, the
 * response is returned, the last error is thrown after the last attempt, and the agent's
 * definitive errors (400/403/500) are thrown at once rather than retried.
 */
export async function performRpc(room: Room, method: string, payload: object): Promise<string> {
  let lastError: unknown = new Error('no agent in the room');
  for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
    if (room.state === ConnectionState.Disconnected) throw new Error('not connected');
    const agentParticipant = findAgent(room);
    if (agentParticipant) {
      try {
        return await room.localParticipant.performRpc({
          destinationIdentity: agentParticipant.identity,
          method,
          payload: JSON.stringify(payload),
        });
      } catch (error) {
        if (error instanceof RpcError && FINAL_ERROR_CODES.has(error.code)) throw error;
        lastError = error;
      }
    }
    await sleep(RETRY_DELAY_MS);
  }
  throw lastError;
}

export function describeError(error: unknown): string {
  if (error instanceof RpcError) return `RpcError ${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

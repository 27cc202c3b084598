// Token Generation (contract): POST /api/token {room, identity, metadata: {language, faqs?}}.

export interface Faq {
  question: string;
  answer: string;
}

export interface SessionMetadata {
  language: string;
  faqs?: Faq[];
}

export interface TokenRequest {
  room: string;
  identity: string;
  metadata: SessionMetadata;
}

export interface TokenResponse {
  token: string;
  url: string;
  room: string;
  identity: string;
  expires_at: string | number;
}

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `avatar-a1b2c3d4`: the token server only accepts rooms named `<prefix>-<id>`. */
export function newRoomName(prefix: string): string {
  return `${prefix}-${randomHex(4)}`;
}

/** `user-…`: identities starting with `agent` are reserved for the agent. */
export function newIdentity(): string {
  return `user-${randomHex(6)}`;
}

export async function fetchToken(tokenUrl: string, request: TokenRequest): Promise<TokenResponse> {
  const response = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(request),
  });
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    // The token server answers 4xx with `{detail}` (a string, or FastAPI's list of field errors).
    const detail = body && typeof body === 'object' ? (body as { detail?: unknown }).detail : undefined;
    const text = typeof detail === 'string' ? detail : JSON.stringify(detail ?? body);
    throw new Error(`token request failed (${response.status}): ${text}`);
  }
  const data = body as Partial<TokenResponse> | null;
  if (!data || typeof data.token !== 'string' || typeof data.url !== 'string') {
    throw new Error('token response lacks token/url');
  }
  return data as TokenResponse;
}

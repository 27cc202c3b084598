// Environment Variables (contract): VITE_LIVEKIT_URL, VITE_ROOM_PREFIX.
//
// The page is built once and served by many stacks (dev, tests on free ports), so the URLs are
// read at start from `./config.json` next to index.html. Anything it lacks falls back to the
// build-time variables (VITE_LIVEKIT_URL, VITE_ROOM_PREFIX, VITE_TOKEN_URL), then to defaults.

export interface PlaygroundConfig {
  /** LiveKit WebSocket URL; when empty, the `url` of the token response is used. */
  livekitUrl: string;
  tokenUrl: string;
  roomPrefix: string;
}

const DEFAULTS: PlaygroundConfig = {
  livekitUrl: import.meta.env.VITE_LIVEKIT_URL ?? '',
  tokenUrl: import.meta.env.VITE_TOKEN_URL ?? 'http://127.0.0.1:8080/api/token',
  roomPrefix: import.meta.env.VITE_ROOM_PREFIX ?? 'avatar',
};

function pickString(source: Record<string, unknown>, key: keyof PlaygroundConfig): string | undefined {
  const value = source[key];
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}

export async function loadConfig(): Promise<PlaygroundConfig> {
  let runtime: Record<string, unknown> = {};
  try {
    const response = await fetch('./config.json', { cache: 'no-store' });
    const body: unknown = response.ok ? await response.json() : null;
    if (body && typeof body === 'object') runtime = body as Record<string, unknown>;
  } catch {
    // No config.json (e.g. `npm run dev`): the build-time variables apply.
  }
  return {
    livekitUrl: pickString(runtime, 'livekitUrl') ?? DEFAULTS.livekitUrl,
    tokenUrl: pickString(runtime, 'tokenUrl') ?? DEFAULTS.tokenUrl,
    roomPrefix: pickString(runtime, 'roomPrefix') ?? DEFAULTS.roomPrefix,
  };
}

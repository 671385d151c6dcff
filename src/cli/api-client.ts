// The CLI's client of the admin API.
export const DEFAULT_API = process.env.WEFT_API ?? 'http://127.0.0.1:15000';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: any,
  ) {
    super(body?.error ?? `HTTP ${status}`);
  }
}

export async function apiRequest(base: string, method: string, path: string, body?: string, contentType?: string): Promise<any> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      body,
      headers: contentType ? { 'content-type': contentType } : undefined,
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
    throw new Error(`cannot reach the control plane at ${base} (${cause}); is \`weft control\` running? (--api or WEFT_API)`);
  }
  const text = await res.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { error: text };
  }
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

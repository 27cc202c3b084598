// One line per transcript segment: interim text replaced in place, final text kept.
import type { TranscriptSegment } from '../transcription';

export class TranscriptView {
  constructor(private readonly list: HTMLElement) {}

  /** `typed`: text the user typed (sent with `send_text`), which no transcript stream carries. */
  upsert(segment: TranscriptSegment, { typed = false } = {}): void {
    let line = this.list.querySelector<HTMLElement>(
      `[data-segment="${CSS.escape(segment.segmentId)}"]`,
    );
    if (!line) {
      line = document.createElement('li');
      line.dataset.role = 'transcript-line';
      line.dataset.segment = segment.segmentId;
      line.dataset.speaker = segment.speaker;
      if (typed) line.dataset.typed = 'true';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = segment.speaker === 'agent' ? 'Agent' : 'You';
      const text = document.createElement('span');
      text.className = 'text';
      line.append(who, text);
      this.list.appendChild(line);
    } else if (line.dataset.final === 'true' && !segment.final) {
      return; // a late interim result never overwrites the final text
    }
    line.dataset.final = String(segment.final);
    const text = line.querySelector('.text');
    if (text) text.textContent = segment.text;
    this.list.scrollTop = this.list.scrollHeight;
  }

  clear(): void {
    this.list.replaceChildren();
  }
}

// The agent's state on a face: colour, animation and a label differ per state (see style.css).
import type { AgentState } from '../agentState';

const FACE_SVG = `
<svg viewBox="0 0 200 200" class="face" aria-hidden="true">
  <circle class="halo" cx="100" cy="100" r="94" />
  <circle class="head" cx="100" cy="100" r="80" />
  <g class="eyes">
    <ellipse class="eye" cx="72" cy="88" rx="9" ry="12" />
    <ellipse class="eye" cx="128" cy="88" rx="9" ry="12" />
  </g>
  <path class="smile" d="M76 130 Q100 152 124 130" />
  <ellipse class="mouth" cx="100" cy="138" rx="16" ry="5" />
  <g class="dots">
    <circle cx="146" cy="44" r="5" /><circle cx="162" cy="30" r="7" /><circle cx="182" cy="14" r="9" />
  </g>
</svg>`;

export type AvatarState = AgentState | 'disconnected';

export class Avatar {
  private readonly label: HTMLElement;

  constructor(private readonly root: HTMLElement) {
    root.innerHTML = FACE_SVG;
    this.label = document.createElement('p');
    this.label.className = 'avatar-label';
    this.label.dataset.role = 'avatar-label';
    root.appendChild(this.label);
    this.set('disconnected');
  }

  set(state: AvatarState): void {
    this.root.dataset.state = state;
    this.label.textContent = state;
  }
}

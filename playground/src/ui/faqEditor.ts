// A small FAQ editor: one row per FAQ, add and remove; limits as in common/metadata.py.
import { MAX_ANSWER_CHARS, MAX_FAQS, MAX_QUESTION_CHARS } from '../demoFaqs';
import type { Faq } from '../token';

export class FaqEditor {
  constructor(
    private readonly root: HTMLElement,
    private readonly addButton: HTMLButtonElement,
    initial: readonly Faq[],
  ) {
    initial.forEach((faq) => this.addRow(faq));
    addButton.addEventListener('click', () => this.addRow({ question: '', answer: '' }, true));
  }

  /** The FAQs with both fields filled in, trimmed. */
  read(): Faq[] {
    return Array.from(this.root.querySelectorAll<HTMLElement>('[data-role="faq-row"]'))
      .map((row) => ({
        question: row.querySelector<HTMLInputElement>('[data-field="question"]')?.value.trim() ?? '',
        answer: row.querySelector<HTMLTextAreaElement>('[data-field="answer"]')?.value.trim() ?? '',
      }))
      .filter((faq) => faq.question && faq.answer);
  }

  private addRow(faq: Faq, focus = false): void {
    const row = document.createElement('div');
    row.className = 'faq-row';
    row.dataset.role = 'faq-row';

    const question = document.createElement('input');
    question.dataset.field = 'question';
    question.placeholder = 'Question';
    question.maxLength = MAX_QUESTION_CHARS;
    question.value = faq.question;

    const answer = document.createElement('textarea');
    answer.dataset.field = 'answer';
    answer.placeholder = 'Answer';
    answer.maxLength = MAX_ANSWER_CHARS;
    answer.rows = 2;
    answer.value = faq.answer;

    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'remove';
    remove.title = 'Remove this FAQ';
    remove.textContent = '×';
    remove.addEventListener('click', () => {
      row.remove();
      this.updateAddButton();
    });

    row.append(question, answer, remove);
    this.root.appendChild(row);
    this.updateAddButton();
    if (focus) question.focus();
  }

  private updateAddButton(): void {
    this.addButton.disabled = this.root.childElementCount >= MAX_FAQS;
  }
}

// The FAQ set the editor starts with. Limits as in common/metadata.py.
import type { Faq } from './token';

export const MAX_FAQS = 50;
export const MAX_QUESTION_CHARS = 300;
export const MAX_ANSWER_CHARS = 1500;

export const DEMO_FAQS: readonly Faq[] = [
  {
    question: 'What are your opening hours?',
    answer: 'We are open Monday to Friday from nine in the morning to six in the evening.',
  },
  {
    question: 'How do I reset my password?',
    answer: 'Click "Forgot password" on the sign-in page and follow the link we email you.',
  },
  {
    question: 'How long does shipping take?',
    answer: 'Standard shipping takes three to five business days.',
  },
  {
    question: 'How do I return an item?',
    answer: 'You can return any item within thirty days for a full refund.',
  },
  {
    question: 'How can I contact support?',
    answer: 'Email support at example dot com or call us on weekdays.',
  },
];

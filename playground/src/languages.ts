// The session languages, as in common/languages.py (code + native name).

export interface Language {
  code: string;
  nativeName: string;
}

export const LANGUAGES: readonly Language[] = [
  { code: 'en', nativeName: 'English' },
  { code: 'en-GB', nativeName: 'English (UK)' },
  { code: 'es', nativeName: 'Español' },
  { code: 'es-MX', nativeName: 'Español (México)' },
  { code: 'fr', nativeName: 'Français' },
  { code: 'de', nativeName: 'Deutsch' },
  { code: 'it', nativeName: 'Italiano' },
  { code: 'pt-BR', nativeName: 'Português (Brasil)' },
];

export const DEFAULT_LANGUAGE = 'en';

//! A labelled input with its error wired through `aria-invalid` and `aria-describedby`.

import { useId, type InputHTMLAttributes, type Ref } from 'react';

export interface FieldProps extends InputHTMLAttributes<HTMLInputElement> {
  label: string;
  error?: string | undefined;
  hint?: string | undefined;
  inputRef?: Ref<HTMLInputElement>;
}

export function Field({ label, error, hint, inputRef, id, ...input }: FieldProps) {
  const generated = useId();
  const inputId = id ?? `gh-${generated}`;
  const hintId = hint ? `${inputId}-hint` : undefined;
  const errorId = error ? `${inputId}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  return (
    <div className="gh-field">
      <label className="gh-label" htmlFor={inputId}>
        {label}
      </label>
      {hint ? (
        <p className="gh-hint" id={hintId}>
          {hint}
        </p>
      ) : null}
      <input
        {...input}
        id={inputId}
        ref={inputRef}
        className="gh-input"
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
      />
      {error ? (
        <p className="gh-field-error" id={errorId}>
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** The form-level error: announced when it appears. */
export function FormError({ message }: { message: string | null }) {
  return (
    <div className="gh-error" role="alert" aria-live="assertive">
      {message}
    </div>
  );
}

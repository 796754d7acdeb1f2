// Gatehouse's passkey ceremonies on the hosted pages. Served same-origin as
// /assets/passkeys.js?v=<fingerprint>, allowed by the page's CSP through its SHA-256 (the tag
// carries the same `integrity`); no inline script anywhere. Every fetch is a same-origin POST
// carrying the page's CSRF token in the `x-csrf-token` header. Everything but the WebAuthn
// ceremony works without this script.
(() => {
  'use strict';

  const root = document.querySelector('[data-passkeys]');
  if (!root || !window.PublicKeyCredential || !navigator.credentials) return;
  const csrf = root.getAttribute('data-csrf') || '';
  const returnTo = root.getAttribute('data-return-to') || '/account';
  const errorBox = document.querySelector('[data-passkey-error]');
  const parseRequest = PublicKeyCredential.parseRequestOptionsFromJSON;
  const parseCreation = PublicKeyCredential.parseCreationOptionsFromJSON;
  if (typeof parseRequest !== 'function' || typeof parseCreation !== 'function') return;

  // The passkey controls are hidden until this script shows them: without it (or without
  // WebAuthn) the page offers only what works.
  for (const element of document.querySelectorAll('[data-passkey-control]')) {
    element.hidden = false;
  }

  // The server's words are shown only where they name what to fix in the form (an invalid
  // or taken address); otherwise the page's own message, in the page's language.
  const SPECIFIC = new Set(['validation_failed', 'email_taken', 'signup_disabled']);

  function showError(error) {
    if (!errorBox) return;
    let specific = '';
    if (error && error.server && SPECIFIC.has(error.code)) {
      specific = error.fields && error.fields.length ? error.fields.join(' ') : error.message;
    }
    errorBox.textContent = specific || errorBox.getAttribute('data-default') || '';
    errorBox.hidden = false;
  }

  function clearError() {
    if (errorBox) errorBox.hidden = true;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body),
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (_) {
      answer = {};
    }
    if (!response.ok) {
      const error = new Error(answer.detail || answer.title || String(response.status));
      error.code = answer.code;
      error.server = true;
      error.fields = Array.isArray(answer.errors) ? answer.errors.map((field) => field.message) : [];
      throw error;
    }
    return answer;
  }

  // A ceremony the person cancelled (or that was aborted) is not an error to show.
  function cancelled(error) {
    return error && (error.name === 'NotAllowedError' || error.name === 'AbortError');
  }

  function go(answer) {
    const target = new URL(answer.redirect_to || returnTo, window.location.href);
    const here = window.location;
    if (target.pathname === here.pathname && target.search === here.search) {
      // Only the fragment differs: assigning would not load the page again.
      here.hash = target.hash;
      here.reload();
    } else {
      here.assign(target.href);
    }
  }

  // --- Sign-in (/login): the button, and conditional UI on the username field. ---
  let conditional = null;

  async function signIn(mediation, signal) {
    const begin = await post('/login/passkey/begin', {});
    const publicKey = parseRequest(begin.options.publicKey);
    const options = { publicKey };
    if (mediation) options.mediation = mediation;
    if (signal) options.signal = signal;
    const credential = await navigator.credentials.get(options);
    if (!credential) return;
    const done = await post('/login/passkey/finish', {
      ceremony_id: begin.ceremony_id,
      credential: credential.toJSON(),
      return_to: returnTo,
    });
    go(done);
  }

  async function startConditional() {
    if (typeof PublicKeyCredential.isConditionalMediationAvailable !== 'function') return;
    if (!(await PublicKeyCredential.isConditionalMediationAvailable())) return;
    const controller = new AbortController();
    const running = signIn('conditional', controller.signal).catch((error) => {
      if (!cancelled(error)) showError(error);
    });
    conditional = { controller, running };
  }

  async function stopConditional() {
    if (!conditional) return;
    const { controller, running } = conditional;
    conditional = null;
    controller.abort();
    await running;
  }

  const signInButton = document.querySelector('[data-passkey-signin]');
  if (signInButton) {
    signInButton.addEventListener('click', async (event) => {
      event.preventDefault();
      clearError();
      signInButton.disabled = true;
      try {
        await stopConditional();
        await signIn(null, null);
      } catch (error) {
        if (!cancelled(error)) showError(error);
      } finally {
        signInButton.disabled = false;
      }
    });
    if (document.querySelector('input[autocomplete~="webauthn"]')) {
      startConditional();
    }
  }

  // --- Registration: "Add a passkey" (/account) and "email then a passkey" (/signup). ---
  async function register(beginUrl, finishUrl, beginBody, extra) {
    const begin = await post(beginUrl, beginBody);
    if (!begin.options) return begin; // e.g. "check your email": nothing to create yet
    const publicKey = parseCreation(begin.options.publicKey);
    const credential = await navigator.credentials.create({ publicKey });
    if (!credential) return null;
    return post(finishUrl, {
      ceremony_id: begin.ceremony_id,
      credential: credential.toJSON(),
      ...extra,
    });
  }

  const addButton = document.querySelector('[data-passkey-register]');
  if (addButton) {
    addButton.addEventListener('click', async (event) => {
      event.preventDefault();
      clearError();
      addButton.disabled = true;
      const nameField = document.querySelector('[data-passkey-name]');
      const name = nameField && nameField.value.trim() ? nameField.value.trim() : undefined;
      try {
        const done = await register('/account/passkeys/begin', '/account/passkeys/finish', {}, { name });
        if (done) go(done);
      } catch (error) {
        if (!cancelled(error)) showError(error);
      } finally {
        addButton.disabled = false;
      }
    });
  }

  const signupButton = document.querySelector('[data-passkey-signup]');
  if (signupButton) {
    signupButton.addEventListener('click', async (event) => {
      event.preventDefault();
      clearError();
      const field = (name) => document.querySelector(`input[name="${name}"]`);
      const value = (name) => (field(name) ? field(name).value.trim() : '');
      if (field('email') && !field('email').reportValidity()) return;
      signupButton.disabled = true;
      try {
        const done = await register(
          '/signup/passkey/begin',
          '/signup/passkey/finish',
          {
            email: value('email'),
            first_name: value('first_name') || undefined,
            last_name: value('last_name') || undefined,
          },
          { return_to: returnTo },
        );
        if (done) go(done);
      } catch (error) {
        if (!cancelled(error)) showError(error);
      } finally {
        signupButton.disabled = false;
      }
    });
  }
})();

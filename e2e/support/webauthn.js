// The DevTools virtual authenticator on a page: a platform authenticator (CTAP2, internal
// transport) with resident keys and user verification that always verifies, so passkey
// ceremonies complete without a person.
export async function addVirtualAuthenticator(context, page, credentials = []) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  for (const credential of credentials) {
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
  }
  return {
    /** The credentials the authenticator holds (with their private keys: tests only). */
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials;
    },
  };
}

/**
 * Makes the page's autofill sign-in (conditional mediation) unavailable, so a journey drives
 * the "Sign in with a passkey" button deterministically: the virtual authenticator answers a
 * conditional request at once, which would sign the page in on load. Runs before the page's
 * own script on every navigation (CDP, so the page's CSP does not apply).
 */
export async function withoutAutofill(page) {
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) {
      window.PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    }
  });
}

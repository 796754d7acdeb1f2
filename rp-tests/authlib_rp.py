#!/usr/bin/env python3
"""An independent relying party for Gatehouse, in Python with authlib.

Starts `gatehouse serve` on a temporary SQLite database, creates a user and clients with the CLI,
then plays a relying party with authlib's OAuth 2 client
(`authlib.integrations.requests_client.OAuth2Session`): OpenID discovery, the authorization code
flow with PKCE (S256), ID-token validation against the JWKS with authlib's OIDC claims classes
(iss, aud, exp, nonce, at_hash), userinfo, refresh-token rotation, client_credentials,
introspection and revocation, plus negative checks (wrong secret, code replay, wrong verifier).
Then the protocol-depth features as a second client beside oauth4webapi: resource indicators
(RFC 8707) and token exchange (RFC 8693) through authlib's extra token parameters, a client
whose client_id is its own metadata document, and back-channel logout (the relying party's
endpoint receives the logout token and verifies it with joserfc against the JWKS).
The browser part (sign-in and consent forms) is a cookie-keeping `requests.Session` that follows
same-origin redirects itself.

Usage: python rp-tests/authlib_rp.py [--no-build] [--binary PATH] [--verbose]

Prints one line per check and ends with `authlib RP: N passed, M failed`; exits non-zero when
any check failed. The server is stopped (SIGTERM, then SIGKILL) on every exit path.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken, UserInfo
from authlib.oidc.discovery import OpenIDProviderMetadata, get_well_known_url
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the flow stops at the redirect
EMAIL = "authlib-rp@example.com"
PASSWORD = "Authlib-RP-" + secrets.token_urlsafe(12)
HTTP_TIMEOUT = 30  # seconds, for every HTTP request
STARTUP_TIMEOUT = 60  # seconds to wait for `gatehouse serve` to announce its URL
CLI_TIMEOUT = 120  # seconds for one CLI command
BUILD_TIMEOUT = 1800  # seconds for `cargo build` (it may wait on the shared target dir's lock)

VERBOSE = False


def log(message: str) -> None:
    print(message, flush=True)


def debug(message: str) -> None:
    if VERBOSE:
        print(f"    {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Checks


class CheckFailed(AssertionError):
    pass


class Tally:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []

    def ok(self, condition: bool, message: str, detail: object = None) -> None:
        """One check: counts a pass, or raises (ending the current scenario) on failure."""
        if condition:
            self.passed += 1
            log(f"  ok   {message}")
            return
        text = message if detail is None else f"{message}\n         got: {detail!r}"
        raise CheckFailed(text)

    def equal(self, actual: object, expected: object, message: str) -> None:
        self.ok(actual == expected, message, None if actual == expected else
                f"{actual!r} (expected {expected!r})")

    def scenario(self, name: str, function, *args) -> object:
        log(f"\n== {name}")
        try:
            return function(*args)
        except CheckFailed as failure:
            self.failed += 1
            self.failures.append(f"{name}: {failure}")
            log(f"  FAIL {failure}")
        except Exception as error:  # an unexpected exception is a failed check too
            self.failed += 1
            self.failures.append(f"{name}: unexpected {type(error).__name__}: {error}")
            log(f"  FAIL unexpected {type(error).__name__}: {error}")
            traceback.print_exc(file=sys.stdout)
        return None


T = Tally()


# --------------------------------------------------------------------------------------------
# The server and its CLI


def gatehouse_binary(args: argparse.Namespace) -> str:
    if args.binary:
        return os.path.abspath(args.binary)
    if not args.no_build:
        log("building: cargo build -p gatehouse")
        subprocess.run(["cargo", "build", "-p", "gatehouse"], cwd=REPO, check=True,
                       timeout=BUILD_TIMEOUT)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    binary = os.path.join(target if os.path.isabs(target) else os.path.join(REPO, target),
                          "debug", "gatehouse")
    if not os.path.exists(binary):
        raise SystemExit(f"no gatehouse binary at {binary}: run `cargo build -p gatehouse`")
    return binary


class Server:
    """`gatehouse serve` in a subprocess; every instance is stopped by `stop()` or at exit."""

    running: list["Server"] = []

    def __init__(self, binary: str, env: dict[str, str], directory: str, name: str) -> None:
        self.binary, self.env, self.directory, self.name = binary, env, directory, name
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.stderr_path = os.path.join(directory, f"{name}.stderr.log")

    def start(self) -> str:
        stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            [self.binary, "serve"], cwd=self.directory, env=self.env,
            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        stderr.close()
        Server.running.append(self)
        lines: queue.Queue = queue.Queue()

        def pump(stream) -> None:
            for raw in iter(stream.readline, b""):
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.process.stdout,), daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.name}: no URL announced within {STARTUP_TIMEOUT} s"
                                   f"{self.stderr_tail()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=10)
                raise RuntimeError(f"{self.name}: exited ({self.process.returncode}) before "
                                   f"announcing its URL{self.stderr_tail()}")
            debug(f"{self.name} stdout: {line.rstrip()}")
            # Without GATEHOUSE_ISSUER the server names itself http://localhost:<port> (a domain,
            # for passkeys); with one, the address it bound.
            match = re.search(r"http://(?:127\.0\.0\.1|localhost):[0-9]+", line)
            if match:
                self.url = match.group(0)
                return self.url

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as handle:
                tail = handle.read().splitlines()[-lines:]
        except OSError:
            return ""
        return "\n  server stderr:\n    " + "\n    ".join(tail) if tail else ""

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: no exit 15 s after SIGTERM; killing it")
            process.kill()
            process.wait(timeout=10)
        if self in Server.running:
            Server.running.remove(self)


def stop_all_servers() -> None:
    for server in list(Server.running):
        try:
            server.stop()
        except Exception as error:  # keep stopping the others
            log(f"could not stop {server.name}: {error}")
            if server.process is not None:
                server.process.kill()


def cli(binary: str, env: dict[str, str], directory: str, *arguments: str) -> dict:
    """Runs a gatehouse CLI command with --json; answers its JSON output."""
    result = subprocess.run([binary, *arguments, "--json"], cwd=directory, env=env,
                            capture_output=True, text=True, timeout=CLI_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"gatehouse {' '.join(arguments[:2])} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    output = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not output:
        raise RuntimeError(f"gatehouse {' '.join(arguments[:2])} printed no JSON:\n"
                           f"{result.stdout}{result.stderr}")
    return json.loads(output[-1])


MASTER_KEYS: dict[str, str] = {}


def server_env(data_dir: str, **extra: str) -> dict[str, str]:
    """The environment for the server and the CLI on `data_dir` (one master key per directory).
    Inherited GATEHOUSE_* variables are dropped so that nothing else configures the run."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEHOUSE_")}
    env.update({
        "GATEHOUSE_DATA_DIR": data_dir,
        "GATEHOUSE_MASTER_KEY": MASTER_KEYS.setdefault(data_dir, secrets.token_hex(32)),
        "GATEHOUSE_RATE_LIMIT_ENABLED": "false",
        "GATEHOUSE_PASSWORD_MEMORY_KIB": "1024",
        "GATEHOUSE_PASSWORD_ITERATIONS": "1",
        "GATEHOUSE_PASSWORD_PARALLELISM": "1",
        "GATEHOUSE_HTTP_ADDR": "127.0.0.1:0",
        "RUST_LOG": env.get("RUST_LOG", "warn"),
    })
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The browser: cookies, hidden form fields, same-origin redirects


class FormParser(HTMLParser):
    """Collects each <form>'s action, method and named <input> values (unescaped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = {name: (value or "") for name, value in attrs}
        if tag == "form":
            self._current = {"action": attributes.get("action", ""),
                             "method": attributes.get("method", "get").lower(), "fields": {},
                             "buttons": []}
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "button") and "name" in attributes:
            if tag == "button" or attributes.get("type") == "submit":
                self._current["buttons"].append((attributes["name"],
                                                 attributes.get("value", "")))
            elif attributes.get("type") not in ("checkbox", "radio") or "checked" in attributes:
                self._current["fields"].setdefault(attributes["name"],
                                                   attributes.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms_of(html: str) -> list[dict]:
    parser = FormParser()
    parser.feed(html)
    return parser.forms


def form_with(response: requests.Response, field: str) -> dict | None:
    for form in forms_of(response.text):
        if field in form["fields"] or any(name == field for name, _ in form["buttons"]):
            return form
    return None


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def absolute(self, location: str) -> str:
        return location if "://" in location else self.base_url + location

    def get(self, url: str) -> requests.Response:
        return self.http.get(self.absolute(url), allow_redirects=False, timeout=HTTP_TIMEOUT)

    def post(self, url: str, form: dict) -> requests.Response:
        return self.http.post(self.absolute(url), data=form, allow_redirects=False,
                              timeout=HTTP_TIMEOUT)

    def follow(self, response: requests.Response) -> requests.Response:
        """Follows same-origin redirects; stops at a page or a redirect leaving the server."""
        for _ in range(10):
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            if not (location.startswith("/") or location.startswith(self.base_url + "/")):
                return response
            debug(f"browser: {response.status_code} -> {location}")
            response = self.get(location)
        raise CheckFailed("more than 10 same-origin redirects")


def redirect_query(response: requests.Response) -> tuple[str, dict[str, str]]:
    location = response.headers.get("location", "")
    if response.status_code not in (302, 303) or not location.startswith(REDIRECT_URI):
        raise CheckFailed(f"expected a redirect to {REDIRECT_URI}, got {response.status_code} "
                          f"location={location!r}\n{response.text[:2000]}")
    return location, {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def browse_to_callback(browser: Browser, authorization_url: str, *, expect_login: bool,
                       expect_consent: bool) -> tuple[str, dict[str, str]]:
    """Drives the hosted pages from the authorization URL to the client's redirect."""
    page = browser.follow(browser.get(authorization_url))
    login = form_with(page, "password")
    T.ok(bool(login) == expect_login,
         "the authorization endpoint sends a signed-out browser to the login form" if expect_login
         else "an already signed-in browser is not asked to sign in again",
         f"{page.status_code} {page.url}\n{page.text[:1500]}")
    if login:
        T.ok(login["action"] == "/login" and "csrf_token" in login["fields"]
             and "return_to" in login["fields"],
             "the login form posts to /login with csrf_token and return_to", login)
        fields = dict(login["fields"], identifier=EMAIL, password=PASSWORD)
        answer = browser.post(login["action"], fields)
        T.ok(answer.status_code == 303
             and "/oauth2/authorize?" in answer.headers.get("location", ""),
             "signing in 303-redirects back to /oauth2/authorize",
             f"{answer.status_code} {answer.headers.get('location')}\n{answer.text[:1500]}")
        page = browser.follow(answer)
    consent = form_with(page, "decision")
    T.ok(bool(consent) == expect_consent,
         "the consent form is shown" if expect_consent
         else "no consent form (skip-consent client, or consent already given)",
         f"{page.status_code} {page.headers.get('location')}\n{page.text[:1500]}")
    if consent:
        T.ok(consent["action"] == "/consent" and "request" in consent["fields"]
             and "csrf_token" in consent["fields"],
             "the consent form posts to /consent with request and csrf_token", consent)
        fields = dict(consent["fields"], decision="allow")
        page = browser.post(consent["action"], fields)
    return redirect_query(page)


# --------------------------------------------------------------------------------------------
# The relying party


class Provider:
    """What authlib's OIDC discovery gives the relying party."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        url = base_url + get_well_known_url(base_url)
        response = requests.get(url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        self.metadata = OpenIDProviderMetadata(response.json())
        self.metadata.validate()
        jwks = requests.get(self.metadata["jwks_uri"], timeout=HTTP_TIMEOUT)
        jwks.raise_for_status()
        self.jwks = jwks.json()
        self.key_set = KeySet.import_key_set(self.jwks)

    def session(self, client_id: str, client_secret: str | None, scope: str | None,
                **kwargs) -> OAuth2Session:
        return OAuth2Session(
            client_id=client_id, client_secret=client_secret, scope=scope,
            redirect_uri=REDIRECT_URI, code_challenge_method="S256",
            token_endpoint=self.metadata["token_endpoint"], default_timeout=HTTP_TIMEOUT,
            **kwargs,
        )

    def validate_id_token(self, id_token: str, client_id: str, nonce: str | None,
                          access_token: str | None) -> CodeIDToken:
        """Validates an ID token the way authlib's OpenID client does: joserfc checks the
        signature against the JWKS with the advertised algorithms; authlib's CodeIDToken checks
        iss, aud, exp, iat, nonce, azp and at_hash."""
        algorithms = self.metadata.get("id_token_signing_alg_values_supported")
        token = jwt.decode(id_token, self.key_set,
                           registry=JWSRegistry(algorithms=algorithms, strict_check_header=False))
        options = {
            "iss": {"essential": True, "value": self.metadata["issuer"]},
            "aud": {"essential": True, "value": client_id},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "sub": {"essential": True},
        }
        params = {"client_id": client_id, "nonce": nonce, "access_token": access_token}
        claims = CodeIDToken(token.claims, token.header, options, params)
        claims.validate(leeway=30)
        return claims


def authorize(provider: Provider, rp: OAuth2Session, browser: Browser, *, scope: str,
              expect_login: bool, expect_consent: bool) -> dict:
    """The front channel: authlib makes the URL (state, nonce, PKCE S256); the browser gets a
    code. Answers what the token request needs."""
    code_verifier = generate_token(64)
    nonce = generate_token(24)
    url, state = rp.create_authorization_url(
        provider.metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce,
        scope=scope)
    query = parse_qs(urlsplit(url).query)
    T.ok(query.get("code_challenge_method") == ["S256"]
         and query.get("code_challenge") == [create_s256_code_challenge(code_verifier)],
         "authlib put an S256 code_challenge in the authorization URL", url)
    location, callback = browse_to_callback(browser, url, expect_login=expect_login,
                                            expect_consent=expect_consent)
    T.ok("code" in callback and "error" not in callback,
         "the authorization endpoint redirected to the client with a code", location)
    T.equal(callback.get("state"), state, "the redirect carries the state authlib generated")
    T.equal(callback.get("iss"), provider.metadata["issuer"],
            "the redirect carries iss = the issuer (RFC 9207)")
    return {"location": location, "code": callback["code"], "state": state,
            "code_verifier": code_verifier, "nonce": nonce}


def expect_oauth_error(call, error: str, status: int | None, message: str,
                       statuses: list[int]) -> None:
    """Runs an authlib call that must fail with the OAuth error `error` (and HTTP `status`)."""
    statuses.clear()
    try:
        result = call()
    except OAuthError as failure:
        got_status = statuses[-1] if statuses else None
        T.ok(failure.error == error and (status is None or got_status == status), message,
             f"HTTP {got_status} error={failure.error!r} description={failure.description!r}")
        return
    T.ok(False, message, f"succeeded: {dict(result) if hasattr(result, 'keys') else result}")


def record_statuses(rp: OAuth2Session) -> list[int]:
    """Records the HTTP status of every token-endpoint response authlib parses."""
    statuses: list[int] = []

    def hook(response: requests.Response) -> requests.Response:
        statuses.append(response.status_code)
        debug(f"token endpoint: {response.status_code} {response.text[:300]}")
        return response

    rp.register_compliance_hook("access_token_response", hook)
    rp.register_compliance_hook("refresh_token_response", hook)
    return statuses


# --------------------------------------------------------------------------------------------
# Scenarios


def zero_configuration_discovery(binary: str, workdir: str) -> None:
    """`gatehouse serve` on 127.0.0.1:0 without GATEHOUSE_ISSUER (the README's "picks a free
    port"): the issuer a relying party discovers must be the URL the server serves at."""
    data_dir = os.path.join(workdir, "zero-config")
    os.makedirs(data_dir)
    server = Server(binary, server_env(data_dir), data_dir, "zero-config server")
    try:
        url = server.start()
        document = requests.get(url + "/.well-known/openid-configuration",
                                timeout=HTTP_TIMEOUT).json()
        T.equal(document.get("issuer"), url,
                "with GATEHOUSE_HTTP_ADDR=127.0.0.1:0 and no GATEHOUSE_ISSUER, discovery's "
                "issuer is the URL the server announced")
        T.equal(document.get("token_endpoint"), url + "/oauth2/token",
                "... and so are its endpoints")
    finally:
        server.stop()


def discovery(base_url: str) -> Provider:
    provider = Provider(base_url)
    metadata = provider.metadata
    T.ok(True, "authlib's OpenIDProviderMetadata.validate() accepts the discovery document")
    T.equal(metadata["issuer"], base_url, "issuer is the server's base URL")
    for name, path in [("authorization_endpoint", "/oauth2/authorize"),
                       ("token_endpoint", "/oauth2/token"),
                       ("userinfo_endpoint", "/oauth2/userinfo"),
                       ("introspection_endpoint", "/oauth2/introspect"),
                       ("revocation_endpoint", "/oauth2/revoke"),
                       ("jwks_uri", "/.well-known/jwks.json")]:
        T.equal(metadata.get(name), base_url + path, f"{name} is advertised")
    T.equal(metadata.get("code_challenge_methods_supported"), ["S256"],
            "code_challenge_methods_supported is [S256]")
    T.ok({"authorization_code", "refresh_token", "client_credentials"}
         <= set(metadata.get("grant_types_supported", [])),
         "grant_types_supported has authorization_code, refresh_token and client_credentials",
         metadata.get("grant_types_supported"))
    T.ok(metadata.get("authorization_response_iss_parameter_supported") is True,
         "authorization_response_iss_parameter_supported is true")
    keys = provider.jwks.get("keys", [])
    T.ok(len(keys) >= 1 and all("kid" in key for key in keys),
         "the JWKS has keys with kids and joserfc imports it", provider.jwks)
    return provider


def code_flow(provider: Provider, browser: Browser, client: dict) -> None:
    """Confidential client (client_secret_basic, skip-consent): code + PKCE, ID token, userinfo,
    introspection, refresh rotation, revocation."""
    client_id, secret = client["client_id"], client["client_secret"]
    rp = provider.session(client_id, secret, "openid profile email offline_access")
    statuses = record_statuses(rp)
    front = authorize(provider, rp, browser, scope="openid profile email offline_access",
                      expect_login=True, expect_consent=False)

    token = rp.fetch_token(authorization_response=front["location"], state=front["state"],
                           code_verifier=front["code_verifier"])
    T.equal(statuses[-1:], [200], "fetch_token (code + code_verifier) is answered 200")
    T.ok(str(token.get("token_type", "")).lower() == "bearer" and token.get("access_token")
         and token.get("refresh_token") and token.get("id_token") and token.get("expires_in"),
         "the token response has a bearer access token, a refresh token (offline_access), an "
         "ID token and expires_in", {k: v for k, v in token.items() if k != "id_token"})
    T.equal(set(str(token.get("scope", "")).split()),
            {"openid", "profile", "email", "offline_access"}, "the granted scope is reported")

    claims = provider.validate_id_token(token["id_token"], client_id, front["nonce"],
                                        token["access_token"])
    T.ok(True, "the ID token validates (signature via JWKS, iss, aud, exp, iat, nonce, at_hash)")
    T.ok("at_hash" in claims, "the ID token has at_hash (checked against the access token)",
         dict(claims))
    T.equal(claims.get("email"), EMAIL, "the ID token carries the email")
    T.ok(isinstance(claims.get("auth_time"), int), "the ID token has auth_time", dict(claims))
    try:
        provider.validate_id_token(token["id_token"], client_id, "another-nonce",
                                   token["access_token"])
        T.ok(False, "a wrong nonce makes authlib reject the ID token", "accepted")
    except JoseError as error:
        T.ok(True, f"a wrong nonce makes authlib reject the ID token ({error.error})")
    try:
        provider.validate_id_token(token["id_token"], "someone-else", front["nonce"],
                                   token["access_token"])
        T.ok(False, "another audience makes authlib reject the ID token", "accepted")
    except JoseError as error:
        T.ok(True, f"another audience makes authlib reject the ID token ({error.error})")

    response = rp.get(provider.metadata["userinfo_endpoint"])
    T.equal(response.status_code, 200, "userinfo answers 200 to the access token")
    userinfo = UserInfo(response.json())
    T.equal(userinfo.get("sub"), claims["sub"], "userinfo's sub is the ID token's sub")
    T.equal(userinfo.get("email"), EMAIL, "userinfo has the email")

    response = rp.introspect_token(provider.metadata["introspection_endpoint"],
                                   token=token["access_token"], token_type_hint="access_token")
    body = response.json()
    T.ok(response.status_code == 200 and body.get("active") is True
         and body.get("client_id") == client_id and body.get("sub") == claims["sub"],
         "introspect_token: the access token is active, for this client and user",
         (response.status_code, body))

    old_refresh = token["refresh_token"]
    refreshed = rp.refresh_token(provider.metadata["token_endpoint"], refresh_token=old_refresh)
    T.equal(statuses[-1:], [200], "refresh_token is answered 200")
    T.ok(refreshed.get("refresh_token") and refreshed["refresh_token"] != old_refresh,
         "refreshing rotates the refresh token")
    T.ok(refreshed.get("access_token") and refreshed["access_token"] != token["access_token"],
         "refreshing issues a new access token")
    if not refreshed.get("id_token"):
        log("  note the refresh response has no ID token (allowed by OIDC Core 12.2)")
    else:
        again = provider.validate_id_token(refreshed["id_token"], client_id, None,
                                           refreshed["access_token"])
        T.equal(again["sub"], claims["sub"], "the refreshed ID token validates, same sub")
    expect_oauth_error(
        lambda: rp.refresh_token(provider.metadata["token_endpoint"], refresh_token=old_refresh),
        "invalid_grant", 400, "the spent refresh token is refused (invalid_grant)", statuses)

    # The replayed refresh token is treated as theft by some servers (the family is revoked);
    # the newest token is checked through introspection rather than assumed.
    rp.token = refreshed
    newest = refreshed["refresh_token"]
    response = rp.revoke_token(provider.metadata["revocation_endpoint"], token=newest,
                               token_type_hint="refresh_token")
    T.equal(response.status_code, 200, "revoke_token (the refresh token) is answered 200")
    response = rp.introspect_token(provider.metadata["introspection_endpoint"],
                                   token=refreshed["access_token"])
    T.ok(response.status_code == 200 and response.json().get("active") is False,
         "after revoking the refresh token its grant's access token is inactive",
         (response.status_code, response.text))
    response = rp.get(provider.metadata["userinfo_endpoint"])
    T.equal(response.status_code, 401, "userinfo refuses the revoked grant's access token")
    expect_oauth_error(
        lambda: rp.refresh_token(provider.metadata["token_endpoint"], refresh_token=newest),
        "invalid_grant", 400, "the revoked refresh token no longer refreshes", statuses)


def negative_checks(provider: Provider, browser: Browser, client: dict) -> None:
    """Wrong secret, code replay, wrong PKCE verifier."""
    client_id, secret = client["client_id"], client["client_secret"]
    scope = "openid offline_access"

    wrong = provider.session(client_id, secret[:-4] + "XXXX", scope)
    statuses = record_statuses(wrong)
    expect_oauth_error(lambda: wrong.fetch_token(grant_type="authorization_code", code="x",
                                                 code_verifier="y" * 43),
                       "invalid_client", 401,
                       "a wrong client secret gets 401 invalid_client", statuses)
    response = requests.post(provider.metadata["token_endpoint"],
                             data={"grant_type": "authorization_code", "code": "x"},
                             auth=(client_id, secret[:-4] + "XXXX"), timeout=HTTP_TIMEOUT)
    T.ok(response.headers.get("www-authenticate", "").lower().startswith("basic"),
         "... with a WWW-Authenticate: Basic challenge", dict(response.headers))

    rp = provider.session(client_id, secret, scope)
    statuses = record_statuses(rp)
    front = authorize(provider, rp, browser, scope=scope, expect_login=False,
                      expect_consent=False)
    token = rp.fetch_token(authorization_response=front["location"], state=front["state"],
                           code_verifier=front["code_verifier"])
    T.ok(bool(token.get("access_token")), "the code is exchanged once")
    expect_oauth_error(
        lambda: rp.fetch_token(authorization_response=front["location"], state=front["state"],
                               code_verifier=front["code_verifier"]),
        "invalid_grant", 400, "reusing the code fails (invalid_grant)", statuses)
    response = rp.introspect_token(provider.metadata["introspection_endpoint"],
                                   token=token["access_token"])
    T.ok(response.status_code == 200 and response.json().get("active") is False,
         "the code replay revoked the tokens of the first exchange (RFC 6749 4.1.2)",
         (response.status_code, response.text))

    front = authorize(provider, rp, browser, scope=scope, expect_login=False,
                      expect_consent=False)
    expect_oauth_error(
        lambda: rp.fetch_token(authorization_response=front["location"], state=front["state"],
                               code_verifier=generate_token(64)),
        "invalid_grant", 400, "a wrong code_verifier fails (invalid_grant)", statuses)
    # A wrong verifier does not spend the code (the verifier is checked before the code is
    # spent, as node oidc-provider does): whoever holds a stolen code but not the verifier
    # cannot burn the legitimate client's exchange. The right verifier then works, once.
    token = rp.fetch_token(authorization_response=front["location"], state=front["state"],
                           code_verifier=front["code_verifier"])
    T.ok(bool(token.get("access_token")),
         "... and did not spend the code: the right verifier still exchanges it")
    expect_oauth_error(
        lambda: rp.fetch_token(authorization_response=front["location"], state=front["state"],
                               code_verifier=front["code_verifier"]),
        "invalid_grant", 400, "... once: a second exchange fails (invalid_grant)", statuses)


def public_client_with_consent(provider: Provider, base_url: str, client: dict) -> None:
    """Public client (no secret, token_endpoint_auth_method=none), in a fresh browser: sign-in
    and the consent form, PKCE, ID token, refresh."""
    client_id = client["client_id"]
    browser = Browser(base_url)
    rp = provider.session(client_id, None, "openid email offline_access")
    statuses = record_statuses(rp)
    T.equal(rp.token_endpoint_auth_method, "none", "authlib uses auth method none (public)")

    # Without PKCE a public client is refused, at the (registered) redirect URI.
    url, state = rp.create_authorization_url(provider.metadata["authorization_endpoint"],
                                             nonce=generate_token(24))
    T.ok("code_challenge" not in url, "an authorization URL without code_challenge", url)
    _, answer = redirect_query(browser.get(url))
    T.ok(answer.get("error") == "invalid_request" and answer.get("state") == state,
         "a public client without PKCE gets error=invalid_request at its redirect URI", answer)

    front = authorize(provider, rp, browser, scope="openid email offline_access",
                      expect_login=True, expect_consent=True)
    token = rp.fetch_token(authorization_response=front["location"], state=front["state"],
                           code_verifier=front["code_verifier"])
    T.equal(statuses[-1:], [200], "the public client's code exchange is answered 200")
    claims = provider.validate_id_token(token["id_token"], client_id, front["nonce"],
                                        token["access_token"])
    T.equal(claims.get("email"), EMAIL, "the public client's ID token validates")
    refreshed = rp.refresh_token(provider.metadata["token_endpoint"],
                                 refresh_token=token["refresh_token"])
    T.ok(refreshed.get("access_token") and refreshed.get("refresh_token")
         and refreshed["refresh_token"] != token["refresh_token"],
         "the public client refreshes (rotating) without a secret")

    # Consent is remembered: the same request again goes straight to the redirect.
    authorize(provider, rp, browser, scope="openid email", expect_login=False,
              expect_consent=False)


def client_credentials(provider: Provider, client: dict) -> None:
    client_id, secret = client["client_id"], client["client_secret"]
    rp = provider.session(client_id, secret, "api:read")
    statuses = record_statuses(rp)
    token = rp.fetch_token(grant_type="client_credentials")
    T.equal(statuses[-1:], [200], "fetch_token(grant_type='client_credentials') is answered 200")
    T.ok(str(token.get("token_type", "")).lower() == "bearer" and token.get("access_token")
         and token.get("expires_in"), "a bearer access token with expires_in", dict(token))
    T.equal(token.get("scope"), "api:read", "the granted scope is api:read")
    T.ok("refresh_token" not in token and "id_token" not in token,
         "no refresh token and no ID token for client_credentials", sorted(token))

    # An RFC 9068 JWT access token, verifiable against the same JWKS.
    decoded = jwt.decode(token["access_token"], provider.key_set)
    T.equal(decoded.header.get("typ"), "at+jwt", "the access token is an at+jwt JWT")
    T.ok(decoded.claims.get("iss") == provider.metadata["issuer"]
         and decoded.claims.get("client_id") == client_id
         and decoded.claims.get("sub") == client_id,
         "its iss is the issuer, its client_id and sub are the client (RFC 9068)",
         decoded.claims)

    response = rp.introspect_token(provider.metadata["introspection_endpoint"],
                                   token=token["access_token"])
    body = response.json()
    T.ok(response.status_code == 200 and body.get("active") is True
         and body.get("client_id") == client_id and body.get("scope") == "api:read",
         "introspect_token: active, this client, scope api:read", (response.status_code, body))

    expect_oauth_error(lambda: rp.fetch_token(grant_type="client_credentials", scope="admin"),
                       "invalid_scope", 400, "an unregistered scope is invalid_scope", statuses)

    response = rp.revoke_token(provider.metadata["revocation_endpoint"],
                               token=token["access_token"], token_type_hint="access_token")
    T.equal(response.status_code, 200, "revoke_token (the access token) is answered 200")
    response = rp.introspect_token(provider.metadata["introspection_endpoint"],
                                   token=token["access_token"])
    T.ok(response.status_code == 200 and response.json() == {"active": False},
         "the revoked access token introspects as {active: false}",
         (response.status_code, response.text))


REPORTS = "https://reports.example.com"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class RelyingPartySite:
    """The relying party's own web server: serves its client ID metadata document at
    /client.json and records what arrives at its back-channel logout endpoint, /backchannel."""

    def __init__(self) -> None:
        self.logouts: queue.Queue[dict[str, list[str]]] = queue.Queue()
        self.document: dict = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                body = json.dumps(site.document).encode()
                self.send_response(200 if self.path == "/client.json" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "max-age=300")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                form["content-type"] = [self.headers.get("content-type", "")]
                if self.path == "/backchannel":
                    site.logouts.put(form)
                self.send_response(200 if self.path == "/backchannel" else 404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def resource_indicators_and_exchange(provider: Provider, browser: Browser, api_client: dict,
                                     exchanger: dict) -> None:
    """An access token for one registered API (`resource` on the authorization and token
    requests, through authlib's extra parameters), then exchanged for that API by a service
    (impersonation allowed by the resource server's policy)."""
    client_id, secret = api_client["client_id"], api_client["client_secret"]
    rp = provider.session(client_id, secret, "openid offline_access reports:read")
    statuses = record_statuses(rp)
    code_verifier = generate_token(64)
    url, state = rp.create_authorization_url(
        provider.metadata["authorization_endpoint"], code_verifier=code_verifier,
        nonce=generate_token(24), resource=REPORTS)
    T.ok(parse_qs(urlsplit(url).query).get("resource") == [REPORTS],
         "authlib put resource in the authorization URL", url)
    location, callback = browse_to_callback(browser, url, expect_login=False,
                                            expect_consent=False)
    token = rp.fetch_token(authorization_response=location, state=state,
                           code_verifier=code_verifier, resource=REPORTS)
    T.equal(statuses[-1:], [200], "fetch_token with resource is answered 200")
    access = jwt.decode(token["access_token"], provider.key_set)
    T.equal(access.claims.get("aud"), REPORTS, "the access token's aud is the resource")
    T.equal(access.claims.get("scope"), "reports:read",
            "its scope is what the resource accepts (openid and offline_access are not for it)")
    expect_oauth_error(
        lambda: rp.refresh_token(provider.metadata["token_endpoint"],
                                 refresh_token=token["refresh_token"],
                                 resource="https://other.example.com"),
        "invalid_target", 400, "a refresh for a resource that was not granted is invalid_target",
        statuses)
    response = requests.get(provider.metadata["userinfo_endpoint"], timeout=HTTP_TIMEOUT,
                            headers={"authorization": f"Bearer {token['access_token']}"})
    T.equal(response.status_code, 401, "userinfo refuses a token for another resource")

    # The user's own token (for Gatehouse) exchanged by the service for the reports API.
    user_rp = provider.session(client_id, secret, "openid")
    front = authorize(provider, user_rp, browser, scope="openid", expect_login=False,
                      expect_consent=False)
    user_token = user_rp.fetch_token(authorization_response=front["location"],
                                     state=front["state"],
                                     code_verifier=front["code_verifier"])
    service = provider.session(exchanger["client_id"], exchanger["client_secret"], None)
    statuses = record_statuses(service)
    exchanged = service.fetch_token(
        grant_type=TOKEN_EXCHANGE, subject_token=user_token["access_token"],
        subject_token_type=ACCESS_TOKEN_TYPE, resource=REPORTS)
    T.equal(statuses[-1:], [200], "token exchange through authlib is answered 200")
    T.equal(exchanged.get("issued_token_type"), ACCESS_TOKEN_TYPE,
            "issued_token_type is an access token")
    claims = jwt.decode(exchanged["access_token"], provider.key_set).claims
    user_sub = jwt.decode(user_token["access_token"], provider.key_set).claims.get("sub")
    T.ok(claims.get("aud") == REPORTS and claims.get("sub") == user_sub,
         "the exchanged token is for the resource and acts for the user", claims)
    T.ok("refresh_token" not in exchanged, "no refresh token comes with an exchange",
         sorted(exchanged))
    expect_oauth_error(
        lambda: service.fetch_token(grant_type=TOKEN_EXCHANGE,
                                    subject_token=user_token["access_token"],
                                    subject_token_type=ACCESS_TOKEN_TYPE,
                                    resource="https://unregistered.example.com"),
        "invalid_target", 400, "an exchange for an unregistered resource is invalid_target",
        statuses)
    other = provider.session(client_id, secret, None)
    statuses = record_statuses(other)
    expect_oauth_error(
        lambda: other.fetch_token(grant_type=TOKEN_EXCHANGE,
                                  subject_token=user_token["access_token"],
                                  subject_token_type=ACCESS_TOKEN_TYPE, resource=REPORTS),
        "unauthorized_client", 400,
        "a client the policy does not name cannot exchange (unauthorized_client)", statuses)


def client_id_metadata_document(provider: Provider, base_url: str,
                                site: RelyingPartySite) -> None:
    """No registration at all: the client_id is the URL of the relying party's own metadata
    document, which Gatehouse fetches; authlib runs the code flow as a public client."""
    T.ok(provider.metadata.get("client_id_metadata_document_supported") is True,
         "discovery says client_id_metadata_document_supported")
    client_id = site.base_url + "/client.json"
    site.document = {"client_id": client_id, "client_name": "authlib agent",
                     "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
                     "grant_types": ["authorization_code", "refresh_token"]}
    browser = Browser(base_url)
    rp = provider.session(client_id, None, "openid email")
    statuses = record_statuses(rp)
    front = authorize(provider, rp, browser, scope="openid email", expect_login=True,
                      expect_consent=True)
    token = rp.fetch_token(authorization_response=front["location"], state=front["state"],
                           code_verifier=front["code_verifier"])
    T.equal(statuses[-1:], [200], "the document client's code exchange is answered 200")
    claims = provider.validate_id_token(token["id_token"], client_id, front["nonce"],
                                        token["access_token"])
    T.equal(claims.get("aud"), client_id, "its ID token validates, aud = the document's URL")


def backchannel_logout(provider: Provider, base_url: str, client: dict,
                       site: RelyingPartySite) -> None:
    """The relying party signs the user in, then the user logs out at Gatehouse
    (RP-initiated); the relying party's back-channel endpoint receives a logout token, which
    joserfc verifies against the JWKS, for the ID token's sid."""
    T.ok(provider.metadata.get("backchannel_logout_supported") is True
         and provider.metadata.get("backchannel_logout_session_supported") is True,
         "discovery advertises back-channel logout with sid")
    client_id, secret = client["client_id"], client["client_secret"]
    browser = Browser(base_url)
    rp = provider.session(client_id, secret, "openid offline_access")
    front = authorize(provider, rp, browser, scope="openid offline_access", expect_login=True,
                      expect_consent=False)
    token = rp.fetch_token(authorization_response=front["location"], state=front["state"],
                           code_verifier=front["code_verifier"])
    id_token = provider.validate_id_token(token["id_token"], client_id, front["nonce"],
                                          token["access_token"])
    T.ok(bool(token.get("refresh_token")), "the relying party holds a refresh token")
    response = browser.get(provider.metadata["end_session_endpoint"] + "?id_token_hint="
                           + token["id_token"])
    T.ok(response.status_code in (200, 302, 303) and form_with(response, "id_token_hint") is None,
         "end_session with this browser's ID token signs out without asking",
         (response.status_code, response.text[:500]))
    try:
        form = site.logouts.get(timeout=20)
    except queue.Empty:
        raise CheckFailed("no logout token reached the back-channel endpoint in 20 s") from None
    T.equal(form["content-type"][0], "application/x-www-form-urlencoded",
            "the logout token is POSTed form-encoded")
    algorithms = provider.metadata.get("id_token_signing_alg_values_supported")
    logout = jwt.decode(form["logout_token"][0], provider.key_set,
                        registry=JWSRegistry(algorithms=algorithms, strict_check_header=False))
    T.equal(logout.header.get("typ"), "logout+jwt", "its typ is logout+jwt")
    validator = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": provider.metadata["issuer"]},
        aud={"essential": True, "value": client_id}, iat={"essential": True},
        exp={"essential": True}, jti={"essential": True}, sid={"essential": True},
        leeway=30)
    validator.validate(logout.claims)
    T.ok(True, "joserfc validates it (signature, iss, aud, iat, exp, jti, sid)")
    T.equal(logout.claims.get("sid"), id_token.get("sid"), "its sid is the ID token's sid")
    T.equal(logout.claims.get("sub"), id_token.get("sub"), "its sub is the ID token's sub")
    T.ok("http://schemas.openid.net/event/backchannel-logout" in logout.claims.get("events", {})
         and "nonce" not in logout.claims, "it carries the logout event and no nonce",
         logout.claims)
    expect_oauth_error(
        lambda: rp.refresh_token(provider.metadata["token_endpoint"],
                                 refresh_token=token["refresh_token"]),
        "invalid_grant", None, "the logged-out session's refresh token no longer works", [])


# --------------------------------------------------------------------------------------------


def main() -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build")
    parser.add_argument("--binary", help="the gatehouse binary (implies --no-build)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    VERBOSE = args.verbose

    atexit.register(stop_all_servers)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))

    binary = gatehouse_binary(args)
    workdir = tempfile.mkdtemp(prefix="gatehouse-authlib-rp-")
    site = RelyingPartySite()
    started = time.monotonic()
    try:
        T.scenario("discovery on a zero-configuration server (127.0.0.1:0, no issuer)",
                   zero_configuration_discovery, binary, workdir)

        # The relying-party flows run against a server with an explicit issuer (as every real
        # deployment has): a free port is picked first, then given as address and issuer.
        data_dir = os.path.join(workdir, "server")
        os.makedirs(data_dir)
        server = None
        for attempt in range(3):
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            env = server_env(data_dir, GATEHOUSE_HTTP_ADDR=f"127.0.0.1:{port}",
                             GATEHOUSE_ISSUER=base_url,
                             # The relying party's site (documents, back-channel) is loopback.
                             GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS="true",
                             GATEHOUSE_OUTBOX_POLL_INTERVAL_MS="100",
                             GATEHOUSE_OAUTH_CLIENT_ID_METADATA_DOCUMENTS="true")
            if attempt == 0:
                log("\n== setting up: user and clients through the CLI")
                cli(binary, env, data_dir, "user", "create", "--email", EMAIL,
                    "--password", PASSWORD, "--verified")
                grants = ["--grant-type", "authorization_code", "--grant-type", "refresh_token"]
                web = cli(binary, env, data_dir, "client", "create", "--name", "authlib web",
                          "--redirect-uri", REDIRECT_URI, *grants, "--skip-consent")
                public = cli(binary, env, data_dir, "client", "create", "--name",
                             "authlib public", "--redirect-uri", REDIRECT_URI, "--public",
                             *grants)
                service = cli(binary, env, data_dir, "client", "create", "--name",
                              "authlib service", "--redirect-uri", REDIRECT_URI,
                              "--grant-type", "client_credentials", "--scope", "api:read",
                              "--scope", "api:write")
                T.ok(bool(web.get("client_secret")) and public.get("client_secret") is None
                     and bool(service.get("client_secret")),
                     "the CLI created a user, a confidential, a public and a service client",
                     (web, public, service))
                api_client = cli(binary, env, data_dir, "client", "create", "--name",
                                 "authlib api", "--redirect-uri", REDIRECT_URI, *grants,
                                 "--scope", "openid", "--scope", "offline_access",
                                 "--scope", "reports:read", "--skip-consent")
                exchanger = cli(binary, env, data_dir, "client", "create", "--name",
                                "authlib exchanger", "--redirect-uri", REDIRECT_URI,
                                "--grant-type", TOKEN_EXCHANGE)
                cli(binary, env, data_dir, "resource-server", "create", "--identifier", REPORTS,
                    "--name", "Reports", "--scope", "reports:read",
                    "--impersonation-client", exchanger["client_id"])
                logout_client = cli(binary, env, data_dir, "client", "create", "--name",
                                    "authlib single logout", "--redirect-uri", REDIRECT_URI,
                                    *grants, "--skip-consent", "--backchannel-logout-uri",
                                    site.base_url + "/backchannel")
            server = Server(binary, env, data_dir, "server")
            try:
                url = server.start()
                break
            except RuntimeError as error:
                server.stop()
                if attempt == 2 or "cannot listen" not in str(error):
                    raise
                log(f"port {port} was taken meanwhile; trying another")
        T.equal(url, base_url, "gatehouse serve announced the configured address")

        provider = T.scenario("OpenID discovery with authlib", discovery, base_url)
        if provider is None:
            raise RuntimeError("discovery failed: the relying-party flows cannot run")
        browser = Browser(base_url)
        T.scenario("authorization code + PKCE, ID token, userinfo, refresh, revocation "
                   "(confidential client)", code_flow, provider, browser, web)
        T.scenario("negative checks: wrong secret, code replay, wrong verifier",
                   negative_checks, provider, browser, web)
        T.scenario("public client: consent form, PKCE, refresh", public_client_with_consent,
                   provider, base_url, public)
        T.scenario("client_credentials, introspection, revocation", client_credentials,
                   provider, service)
        T.scenario("resource indicators and token exchange (RFC 8707, RFC 8693)",
                   resource_indicators_and_exchange, provider, browser, api_client, exchanger)
        T.scenario("a client described by its own metadata document", client_id_metadata_document,
                   provider, base_url, site)
        T.scenario("back-channel logout (OpenID Connect Back-Channel Logout 1.0)",
                   backchannel_logout, provider, base_url, logout_client, site)
    except CheckFailed as failure:
        T.failed += 1
        T.failures.append(str(failure))
        log(f"  FAIL {failure}")
    except Exception as error:
        T.failed += 1
        T.failures.append(f"setup: {type(error).__name__}: {error}")
        log(f"  FAIL setup: {type(error).__name__}: {error}")
        traceback.print_exc(file=sys.stdout)
    finally:
        stop_all_servers()
        site.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    log(f"\n{len(T.failures)} failure(s) in {time.monotonic() - started:.1f} s" if T.failures
        else f"\nall checks passed in {time.monotonic() - started:.1f} s")
    for failure in T.failures:
        log(f"  - {failure.splitlines()[0]}")
    log(f"authlib RP: {T.passed} passed, {T.failed} failed")
    return 1 if T.failed else 0


if __name__ == "__main__":
    sys.exit(main())

//! The OAuth 2.1 / OpenID Connect operations in the OpenAPI document. Their requests and
//! answers are fixed by RFCs (form-encoded bodies, `{"error","error_description"}` errors), so
//! they are described here from one table instead of from handler annotations: each entry is
//! the method, path, summary, parameters and the statuses the handler can answer.

use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, Required, ResponsesBuilder};

/// Where an operation's parameters travel.
#[derive(Clone, Copy)]
enum Carrier {
    Query,
    Form,
    /// A JSON object (dynamic client registration, RFC 7591).
    Json,
    /// Nothing but the path.
    None,
}

/// What a successful answer is.
#[derive(Clone, Copy)]
enum Answer {
    /// JSON (`200`).
    Json,
    /// JSON (`201`): something was created (a pushed authorization request).
    Created,
    /// An HTML page or a redirect (`200`, `302`, `303`).
    Browser,
    /// `200` with no meaningful body (revocation).
    Empty,
    /// `204` (a registration deleted).
    NoContent,
}

struct OAuthOperation {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    carrier: Carrier,
    /// `(name, required)`; every value is a string.
    parameters: &'static [(&'static str, bool)],
    answer: Answer,
    /// Error statuses besides the ones every operation can answer (see `errors`).
    errors: &'static [u16],
}

const TOKEN: &[(&str, bool)] = &[
    ("grant_type", true),
    ("code", false),
    ("redirect_uri", false),
    ("code_verifier", false),
    ("refresh_token", false),
    ("scope", false),
    ("device_code", false),
    ("resource", false),
    ("subject_token", false),
    ("subject_token_type", false),
    ("actor_token", false),
    ("actor_token_type", false),
    ("audience", false),
    ("requested_token_type", false),
    ("client_id", false),
    ("client_secret", false),
    ("client_assertion_type", false),
    ("client_assertion", false),
];

const AUTHORIZE: &[(&str, bool)] = &[
    ("client_id", true),
    ("response_type", true),
    ("redirect_uri", false),
    ("scope", false),
    ("state", false),
    ("nonce", false),
    ("code_challenge", false),
    ("code_challenge_method", false),
    ("prompt", false),
    ("max_age", false),
    ("login_hint", false),
    ("ui_locales", false),
    ("response_mode", false),
    ("request_uri", false),
    ("request", false),
    ("dpop_jkt", false),
    ("resource", false),
];

/// A pushed authorization request: the authorization request's parameters (`client_id` as
/// authenticated, `request_uri` refused) and the client's credentials.
const PUSHED_AUTHORIZATION: &[(&str, bool)] = &[
    ("response_type", true),
    ("redirect_uri", false),
    ("scope", false),
    ("state", false),
    ("nonce", false),
    ("code_challenge", false),
    ("code_challenge_method", false),
    ("prompt", false),
    ("max_age", false),
    ("login_hint", false),
    ("ui_locales", false),
    ("response_mode", false),
    ("request", false),
    ("dpop_jkt", false),
    ("resource", false),
    ("client_id", false),
    ("client_secret", false),
    ("client_assertion_type", false),
    ("client_assertion", false),
];

/// Client metadata (RFC 7591 §2), as a registration sends it.
const CLIENT_METADATA: &[(&str, bool)] = &[
    ("redirect_uris", false),
    ("token_endpoint_auth_method", false),
    ("grant_types", false),
    ("response_types", false),
    ("client_name", false),
    ("scope", false),
    ("jwks", false),
    ("post_logout_redirect_uris", false),
];

const TOKEN_AND_HINT: &[(&str, bool)] = &[
    ("token", true),
    ("token_type_hint", false),
    ("client_id", false),
    ("client_secret", false),
    ("client_assertion_type", false),
    ("client_assertion", false),
];

const DEVICE_AUTHORIZATION: &[(&str, bool)] = &[
    ("scope", false),
    ("client_id", false),
    ("client_secret", false),
    ("client_assertion_type", false),
    ("client_assertion", false),
];

const END_SESSION: &[(&str, bool)] = &[
    ("id_token_hint", false),
    ("post_logout_redirect_uri", false),
    ("state", false),
    ("client_id", false),
    ("ui_locales", false),
];

const OPERATIONS: &[OAuthOperation] = &[
    OAuthOperation {
        method: HttpMethod::Get,
        path: "/.well-known/openid-configuration",
        summary: "OpenID Connect discovery document",
        carrier: Carrier::Query,
        parameters: &[],
        answer: Answer::Json,
        errors: &[],
    },
    OAuthOperation {
        method: HttpMethod::Get,
        path: "/.well-known/oauth-authorization-server",
        summary: "OAuth 2.0 authorization server metadata (RFC 8414)",
        carrier: Carrier::Query,
        parameters: &[],
        answer: Answer::Json,
        errors: &[],
    },
    OAuthOperation {
        method: HttpMethod::Get,
        path: "/oauth2/authorize",
        summary: "Authorization endpoint: the code flow with PKCE (S256); signs in and asks consent on the hosted pages, then redirects to the client",
        carrier: Carrier::Query,
        parameters: AUTHORIZE,
        answer: Answer::Browser,
        errors: &[400],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/token",
        summary: "Token endpoint: authorization_code, refresh_token, client_credentials and device_code grants; a DPoP header (RFC 9449) binds the tokens to its key",
        carrier: Carrier::Form,
        parameters: TOKEN,
        answer: Answer::Json,
        errors: &[400, 401, 413, 415],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/par",
        summary: "Pushed authorization request (RFC 9126): the request is validated and stored; answers the request_uri to send the browser to /oauth2/authorize with",
        carrier: Carrier::Form,
        parameters: PUSHED_AUTHORIZATION,
        answer: Answer::Created,
        errors: &[400, 401, 413, 415],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/introspect",
        summary: "Token introspection (RFC 7662); a client only learns about its own tokens",
        carrier: Carrier::Form,
        parameters: TOKEN_AND_HINT,
        answer: Answer::Json,
        errors: &[400, 401, 413, 415],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/revoke",
        summary: "Token revocation (RFC 7009); a client only revokes its own tokens",
        carrier: Carrier::Form,
        parameters: TOKEN_AND_HINT,
        answer: Answer::Empty,
        errors: &[400, 401, 413, 415],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/device_authorization",
        summary: "Device authorization (RFC 8628): a device code and the user code to enter at /device",
        carrier: Carrier::Form,
        parameters: DEVICE_AUTHORIZATION,
        answer: Answer::Json,
        errors: &[400, 401, 413, 415],
    },
    OAuthOperation {
        method: HttpMethod::Get,
        path: "/oauth2/userinfo",
        summary: "OpenID Connect userinfo: the claims of the access token's scopes; a DPoP-bound token comes as Authorization: DPoP with a proof in the DPoP header",
        carrier: Carrier::Query,
        parameters: &[],
        answer: Answer::Json,
        errors: &[401, 403],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/userinfo",
        summary: "OpenID Connect userinfo (POST form)",
        carrier: Carrier::Form,
        parameters: &[],
        answer: Answer::Json,
        errors: &[401, 403],
    },
    OAuthOperation {
        method: HttpMethod::Post,
        path: "/oauth2/register",
        summary: "Dynamic client registration (RFC 7591), when GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION is open or token (404 while off); answers the client with its registration access token",
        carrier: Carrier::Json,
        parameters: CLIENT_METADATA,
        answer: Answer::Created,
        errors: &[400, 401, 404, 503],
    },
    OAuthOperation {
        method: HttpMethod::Get,
        path: "/oauth2/register/{client_id}",
        summary: "Reads a dynamically registered client (RFC 7592), with its registration access token as a bearer token",
        carrier: Carrier::None,
        parameters: &[],
        answer: Answer::Json,
        errors: &[401, 404, 503],
    },
    OAuthOperation {
        method: HttpMethod::Put,
        path: "/oauth2/register/{client_id}",
        summary: "Replaces a dynamically registered client's metadata (RFC 7592)",
        carrier: Carrier::Json,
        parameters: CLIENT_METADATA,
        answer: Answer::Json,
        errors: &[400, 401, 404, 503],
    },
    OAuthOperation {
        method: HttpMethod::Delete,
        path: "/oauth2/register/{client_id}",
        summary: "Deletes a dynamically registered client (RFC 7592) and ends its grants",
        carrier: Carrier::None,
        parameters: &[],
        answer: Answer::NoContent,
        errors: &[401, 404, 503],
    },
    OAuthOperation {
        method: HttpMethod::Get,
        path: "/oauth2/end_session",
        summary: "RP-initiated logout: a confirmation page, or the registered post-logout redirect",
        carrier: Carrier::Query,
        parameters: END_SESSION,
        answer: Answer::Browser,
        errors: &[400],
    },
];

/// Adds every OAuth operation of the table to `openapi`.
pub(super) fn add_operations(openapi: &mut OpenApi) {
    for entry in OPERATIONS {
        let item = openapi.paths.paths.entry(entry.path.to_owned()).or_default();
        let operation = operation(entry);
        match entry.method {
            HttpMethod::Get => item.get = Some(operation),
            HttpMethod::Post => item.post = Some(operation),
            HttpMethod::Put => item.put = Some(operation),
            HttpMethod::Delete => item.delete = Some(operation),
            _ => {}
        }
    }
}

fn string_object(parameters: &[(&str, bool)]) -> ObjectBuilder {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for (name, required) in parameters {
        object = object.property(*name, ObjectBuilder::new().schema_type(Type::String));
        if *required {
            object = object.required(*name);
        }
    }
    object
}

fn operation(entry: &OAuthOperation) -> Operation {
    let mut builder = OperationBuilder::new()
        .tag("oauth")
        .summary(Some(entry.summary))
        .operation_id(Some(format!(
            "oauth_{}_{}",
            match entry.method {
                HttpMethod::Post => "post",
                HttpMethod::Put => "put",
                HttpMethod::Delete => "delete",
                _ => "get",
            },
            entry.path.trim_start_matches('/').replace(['/', '.', '-', '{', '}'], "_")
        )));
    if entry.path.contains("{client_id}") {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("client_id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    match entry.carrier {
        Carrier::Query => {
            for (name, required) in entry.parameters {
                builder = builder.parameter(
                    ParameterBuilder::new()
                        .name(*name)
                        .parameter_in(ParameterIn::Query)
                        .required(if *required { Required::True } else { Required::False })
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        Carrier::Form => {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/x-www-form-urlencoded",
                        ContentBuilder::new().schema(Some(string_object(entry.parameters))).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        Carrier::Json => {
            let mut object = ObjectBuilder::new().schema_type(Type::Object);
            for (name, _) in entry.parameters {
                object = object.property(*name, ObjectBuilder::new());
            }
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().schema(Some(object)).build())
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        Carrier::None => {}
    }
    let mut responses = ResponsesBuilder::new();
    match entry.answer {
        Answer::Json | Answer::Created => {
            let status = if matches!(entry.answer, Answer::Created) { "201" } else { "200" };
            responses = responses.response(
                status,
                ResponseBuilder::new().description("Success").content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                        .build(),
                ),
            );
        }
        Answer::Empty => {
            responses = responses.response("200", ResponseBuilder::new().description("Done"));
        }
        Answer::NoContent => {
            responses = responses.response("204", ResponseBuilder::new().description("Done"));
        }
        Answer::Browser => {
            responses = responses
                .response(
                    "200",
                    ResponseBuilder::new().description("A hosted page").content(
                        "text/html; charset=utf-8",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    ),
                )
                .response("302", ResponseBuilder::new().description("Redirect to the client"))
                .response("303", ResponseBuilder::new().description("Redirect to a hosted page"));
        }
    }
    for status in entry.errors {
        let response = match entry.answer {
            Answer::Browser => {
                ResponseBuilder::new().description("The request is refused").content(
                    "text/html; charset=utf-8",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                )
            }
            _ => ResponseBuilder::new().description("OAuth error").content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("OAuthError"))).build(),
            ),
        };
        responses = responses.response(status.to_string(), response);
    }
    builder.responses(responses.build()).build()
}

/// The schema of `{"error", "error_description"}`.
pub(super) fn error_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("error", ObjectBuilder::new().schema_type(Type::String))
        .property("error_description", ObjectBuilder::new().schema_type(Type::String))
        .required("error")
}

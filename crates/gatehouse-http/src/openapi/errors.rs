//! The error answers every operation shares, added to the OpenAPI document in one place so that
//! no operation forgets one: a body that is not JSON (400), too large (413), of another media
//! type (415) or of the wrong shape (422); a missing or bad credential (401); an admin route for
//! someone who is not an admin (403); an unknown id in the path (404); a spent rate-limit budget
//! (429, with `Retry-After` and the `RateLimit-*` headers: every `/v1` operation spends the
//! general API budget, `middleware::api_budget`). Errors of the first-party and admin API are
//! `application/problem+json`.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::{ContentBuilder, Header, OpenApi, Ref, RefOr};

const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the shared error answers to every operation of `openapi`, and serves every error
/// answer of the first-party and admin API as `application/problem+json`.
pub(super) fn add_common_errors(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            if path.starts_with("/v1/") {
                add_first_party_errors(path, operation);
            } else if path.starts_with("/oauth2/") {
                add_too_many_requests(operation, None);
            }
        }
    }
}

fn add_first_party_errors(path: &str, operation: &mut Operation) {
    if operation.request_body.is_some() {
        add_status(operation, 400, "The body is not valid JSON", Some(PROBLEM_JSON));
        add_status(operation, 413, "The body is too large", Some(PROBLEM_JSON));
        add_status(operation, 415, "The body is not `application/json`", Some(PROBLEM_JSON));
        add_status(operation, 422, "The body does not have the expected shape", Some(PROBLEM_JSON));
    }
    if operation.security.as_ref().is_some_and(|requirements| !requirements.is_empty()) {
        add_status(operation, 401, "Missing, invalid or expired credentials", Some(PROBLEM_JSON));
    }
    if path.starts_with("/v1/admin/") {
        add_status(operation, 403, "The caller is not an admin", Some(PROBLEM_JSON));
    }
    if path.contains('{') {
        add_status(operation, 404, "No such resource", Some(PROBLEM_JSON));
    }
    add_too_many_requests(operation, Some(PROBLEM_JSON));
    // Errors documented by the handlers as JSON problems are problem+json on the wire.
    for (status, response) in operation.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response)
            && let Some(content) = response.content.shift_remove("application/json")
        {
            response.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
}

fn add_status(operation: &mut Operation, status: u16, description: &str, content: Option<&str>) {
    let key = status.to_string();
    if operation.responses.responses.contains_key(&key) {
        return;
    }
    let mut response = ResponseBuilder::new().description(description);
    if let Some(content_type) = content {
        response = response.content(
            content_type,
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        );
    }
    operation.responses.responses.insert(key, RefOr::T(response.build()));
}

/// 429 with `Retry-After` and the `RateLimit-*` headers, unless the operation describes its own.
fn add_too_many_requests(operation: &mut Operation, content: Option<&str>) {
    add_status(
        operation,
        429,
        "rate_limited: the caller's budget is spent; wait `Retry-After` seconds",
        content,
    );
    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut("429") {
        for header in ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
            response
                .headers
                .entry(header.to_owned())
                .or_insert_with(|| Header::new(Object::with_type(Type::Integer)));
        }
    }
}

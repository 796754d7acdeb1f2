//! Organizations over HTTP on both backends: permission enforcement on every endpoint (owner,
//! admin, member, a custom role), isolation between organizations (outsiders get 404), the
//! last-owner rule, the grant rules, custom roles, validation, the admin API and the audit
//! trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::mfa::{Env, spawn, wait_for_text};

backend_tests!(
    every_endpoint_checks_the_permission_of_the_callers_role,
    outsiders_get_not_found_and_organizations_stay_apart,
    an_organization_keeps_an_owner,
    custom_roles_and_the_grant_rules,
    slugs_names_and_metadata_are_validated,
    admins_list_search_create_and_add_members,
    invitations_travel_by_email_and_land_the_invitee_in_the_organization,
    invitations_wait_on_the_account_of_the_invited_address,
    the_active_organization_rides_in_tokens_and_follows_role_changes_at_refresh,
);

struct Person {
    id: String,
    token: String,
}

async fn person(env: &Env, email: &str) -> Person {
    let tokens = env.app.sign_up(email, support::STRONG_PASSWORD).await;
    Person {
        id: tokens["user"]["id"].as_str().unwrap().to_owned(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn call(
    env: &Env,
    method: Method,
    path: &str,
    who: &Person,
    body: Option<Value>,
) -> (StatusCode, Value) {
    env.app.send(method, path, Some(&who.token), body).await
}

async fn create(env: &Env, owner: &Person, slug: &str) -> String {
    let (status, org) = call(
        env,
        Method::POST,
        "/v1/organizations",
        owner,
        Some(json!({ "name": slug.to_uppercase(), "slug": slug })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(org["role"], "owner");
    org["id"].as_str().unwrap().to_owned()
}

async fn add(env: &Env, org: &str, user: &Person, role: &str) {
    let (status, body) = env
        .app
        .send(
            Method::POST,
            &format!("/v1/admin/organizations/{org}/members"),
            Some(&env.admin),
            Some(json!({ "user_id": user.id, "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn claims_of(token: &str) -> Value {
    support::mfa::claims(token)
}

fn code(answer: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

async fn every_endpoint_checks_the_permission_of_the_callers_role(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "olga@example.com").await;
    let admin = person(&env, "adam@example.com").await;
    let member = person(&env, "mia@example.com").await;
    let other = person(&env, "otto@example.com").await;
    let org = create(&env, &owner, "acme").await;
    add(&env, &org, &admin, "admin").await;
    add(&env, &org, &member, "member").await;
    add(&env, &org, &other, "member").await;
    let base = format!("/v1/organizations/{org}");

    // Everyone reads; only holders of org:update see the private metadata.
    let (_, seen) = call(&env, Method::GET, &base, &member, None).await;
    assert_eq!(seen["role"], "member");
    assert!(seen.get("private_metadata").is_none(), "{seen}");
    let (_, seen) = call(&env, Method::GET, &base, &admin, None).await;
    assert!(seen.get("private_metadata").is_some());
    let (status, page) = call(&env, Method::GET, &format!("{base}/members"), &member, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    assert_eq!(page["data"][3]["user"]["email"], "olga@example.com");

    // A member cannot update, manage members or roles, or delete.
    let denied = (StatusCode::FORBIDDEN, Some("permission_denied"));
    assert_eq!(
        code(&call(&env, Method::PATCH, &base, &member, Some(json!({ "name": "X" }))).await),
        denied
    );
    assert_eq!(
        code(
            &call(
                &env,
                Method::PATCH,
                &format!("{base}/members/{}", other.id),
                &member,
                Some(json!({ "role": "admin" }))
            )
            .await
        ),
        denied
    );
    assert_eq!(
        code(
            &call(&env, Method::DELETE, &format!("{base}/members/{}", other.id), &member, None)
                .await
        ),
        denied
    );
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                &format!("{base}/roles"),
                &member,
                Some(json!({ "key": "x", "name": "X", "permissions": [] }))
            )
            .await
        ),
        denied
    );
    assert_eq!(code(&call(&env, Method::DELETE, &base, &member, None).await), denied);

    // An admin updates and manages members, but cannot delete the organization.
    let (status, updated) = call(
        &env,
        Method::PATCH,
        &base,
        &admin,
        Some(json!({ "name": "Acme Inc", "private_metadata": { "plan": "pro" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Acme Inc");
    assert_eq!(updated["private_metadata"]["plan"], "pro");
    let (status, changed) = call(
        &env,
        Method::PATCH,
        &format!("{base}/members/{}", member.id),
        &admin,
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["role"], "admin");
    assert_eq!(
        call(&env, Method::DELETE, &format!("{base}/members/{}", other.id), &admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(code(&call(&env, Method::DELETE, &base, &admin, None).await), denied);

    // The owner deletes it.
    assert_eq!(call(&env, Method::DELETE, &base, &owner, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&env, Method::GET, &base, &owner, None).await.0, StatusCode::NOT_FOUND);
    let (_, mine) = call(&env, Method::GET, "/v1/organizations", &member, None).await;
    assert!(mine["data"].as_array().unwrap().is_empty());

    let (status, log) =
        env.app.send(Method::GET, "/v1/admin/audit-log?limit=100", Some(&env.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == org.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "organization.created",
        "organization.updated",
        "membership.updated",
        "membership.deleted",
        "organization.deleted",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

async fn outsiders_get_not_found_and_organizations_stay_apart(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let alice = person(&env, "alice@example.com").await;
    let bob = person(&env, "bob@example.com").await;
    let a = create(&env, &alice, "org-a").await;
    let b = create(&env, &bob, "org-b").await;
    // Bob owns B; to him A does not exist, whatever he tries.
    for (method, path, body) in [
        (Method::GET, format!("/v1/organizations/{a}"), None),
        (Method::PATCH, format!("/v1/organizations/{a}"), Some(json!({ "name": "Mine" }))),
        (Method::DELETE, format!("/v1/organizations/{a}"), None),
        (Method::GET, format!("/v1/organizations/{a}/members"), None),
        (
            Method::PATCH,
            format!("/v1/organizations/{a}/members/{}", alice.id),
            Some(json!({ "role": "member" })),
        ),
        (Method::DELETE, format!("/v1/organizations/{a}/members/{}", alice.id), None),
        (Method::GET, format!("/v1/organizations/{a}/roles"), None),
        (Method::POST, format!("/v1/organizations/{a}/leave"), None),
    ] {
        let answer = call(&env, method.clone(), &path, &bob, body).await;
        assert_eq!(code(&answer), (StatusCode::NOT_FOUND, Some("not_found")), "{method} {path}");
    }
    // Members of B are not members of A, even by id.
    assert_eq!(
        call(
            &env,
            Method::PATCH,
            &format!("/v1/organizations/{b}/members/{}", alice.id),
            &bob,
            Some(json!({ "role": "admin" }))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, mine) = call(&env, Method::GET, "/v1/organizations", &bob, None).await;
    let slugs: Vec<&str> =
        mine["data"].as_array().unwrap().iter().map(|o| o["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, vec!["org-b"]);
}

async fn an_organization_keeps_an_owner(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "one@example.com").await;
    let second = person(&env, "two@example.com").await;
    let org = create(&env, &owner, "solo").await;
    let base = format!("/v1/organizations/{org}");
    let last = (StatusCode::CONFLICT, Some("last_owner"));
    assert_eq!(code(&call(&env, Method::POST, &format!("{base}/leave"), &owner, None).await), last);
    assert_eq!(
        code(
            &call(
                &env,
                Method::PATCH,
                &format!("{base}/members/{}", owner.id),
                &owner,
                Some(json!({ "role": "admin" }))
            )
            .await
        ),
        last
    );
    assert_eq!(
        code(
            &call(&env, Method::DELETE, &format!("{base}/members/{}", owner.id), &owner, None)
                .await
        ),
        last
    );
    // With a second owner, the first may go.
    add(&env, &org, &second, "member").await;
    let (status, promoted) = call(
        &env,
        Method::PATCH,
        &format!("{base}/members/{}", second.id),
        &owner,
        Some(json!({ "role": "owner" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(
        call(&env, Method::POST, &format!("{base}/leave"), &owner, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        code(&call(&env, Method::POST, &format!("{base}/leave"), &second, None).await),
        last
    );

    // Deleting needs a recent authentication.
    env.clock.advance(400);
    let (_, tokens) = env.app.sign_in("two@example.com", support::STRONG_PASSWORD).await;
    let fresh = Person {
        id: second.id.clone(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(
        code(&call(&env, Method::DELETE, &base, &second, None).await),
        (StatusCode::FORBIDDEN, Some("reauthentication_required"))
    );
    assert_eq!(call(&env, Method::DELETE, &base, &fresh, None).await.0, StatusCode::NO_CONTENT);
}

async fn custom_roles_and_the_grant_rules(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "own@example.com").await;
    let admin = person(&env, "adm@example.com").await;
    let clerk = person(&env, "clerk@example.com").await;
    let org = create(&env, &owner, "roles").await;
    add(&env, &org, &admin, "admin").await;
    add(&env, &org, &clerk, "member").await;
    let base = format!("/v1/organizations/{org}");
    let denied = (StatusCode::FORBIDDEN, Some("permission_denied"));

    // An admin cannot grant owner, nor touch the owner.
    assert_eq!(
        code(
            &call(
                &env,
                Method::PATCH,
                &format!("{base}/members/{}", clerk.id),
                &admin,
                Some(json!({ "role": "owner" }))
            )
            .await
        ),
        denied
    );
    assert_eq!(
        code(
            &call(
                &env,
                Method::PATCH,
                &format!("{base}/members/{}", owner.id),
                &admin,
                Some(json!({ "role": "member" }))
            )
            .await
        ),
        denied
    );
    assert_eq!(
        code(
            &call(&env, Method::DELETE, &format!("{base}/members/{}", owner.id), &admin, None)
                .await
        ),
        denied
    );
    // Nor make a role with a permission they lack; app permissions are theirs to hand out.
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                &format!("{base}/roles"),
                &admin,
                Some(json!({ "key": "boss", "name": "Boss", "permissions": ["org:delete"] }))
            )
            .await
        ),
        denied
    );
    let (status, role) = call(&env, Method::POST, &format!("{base}/roles"), &admin, Some(json!({ "key": "billing", "name": "Billing", "permissions": ["org:read", "members:read", "invoices:approve"] }))).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    assert_eq!(role["built_in"], false);
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                &format!("{base}/roles"),
                &admin,
                Some(json!({ "key": "billing", "name": "Again", "permissions": [] }))
            )
            .await
        ),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, _) = call(
        &env,
        Method::PATCH,
        &format!("{base}/members/{}", clerk.id),
        &admin,
        Some(json!({ "role": "billing" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = call(&env, Method::GET, &base, &clerk, None).await;
    assert_eq!(seen["role"], "billing");
    assert!(seen["permissions"].as_array().unwrap().contains(&json!("invoices:approve")));
    // An unknown role, a built-in one edited or deleted, a role in use deleted.
    assert_eq!(
        call(
            &env,
            Method::PATCH,
            &format!("{base}/members/{}", clerk.id),
            &admin,
            Some(json!({ "role": "ghost" }))
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        call(
            &env,
            Method::PATCH,
            &format!("{base}/roles/admin"),
            &owner,
            Some(json!({ "name": "A", "permissions": [] }))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&env, Method::DELETE, &format!("{base}/roles/member"), &owner, None).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&env, Method::DELETE, &format!("{base}/roles/billing"), &owner, None).await.0,
        StatusCode::CONFLICT
    );
    // The role changed: its holder's permissions follow.
    let (status, _) = call(
        &env,
        Method::PATCH,
        &format!("{base}/roles/billing"),
        &admin,
        Some(json!({ "name": "Billing", "permissions": ["members:read"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&call(&env, Method::GET, &base, &clerk, None).await), denied);
    // A member can still leave without any permission; then the role can go.
    assert_eq!(
        call(&env, Method::POST, &format!("{base}/leave"), &clerk, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&env, Method::DELETE, &format!("{base}/roles/billing"), &admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, roles) = call(&env, Method::GET, &format!("{base}/roles"), &owner, None).await;
    let keys: Vec<&str> =
        roles["data"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["owner", "admin", "member"]);
}

async fn slugs_names_and_metadata_are_validated(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "val@example.com").await;
    create(&env, &owner, "taken").await;
    let other = person(&env, "val2@example.com").await;
    let answer = call(
        &env,
        Method::POST,
        "/v1/organizations",
        &other,
        Some(json!({ "name": "T", "slug": "taken" })),
    )
    .await;
    assert_eq!(code(&answer), (StatusCode::CONFLICT, Some("slug_taken")));
    let answer = call(&env, Method::POST, "/v1/organizations", &other, Some(json!({ "name": "", "slug": "Bad Slug", "logo_url": "javascript:alert(1)", "public_metadata": [1] }))).await;
    assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.1);
    let fields: Vec<&str> = answer.1["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["name", "slug", "logo_url", "public_metadata"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    let big = "x".repeat(9000);
    let answer = call(
        &env,
        Method::POST,
        "/v1/organizations",
        &other,
        Some(json!({ "name": "Big", "slug": "big", "private_metadata": { "blob": big } })),
    )
    .await;
    assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing was written by the refusals.
    let (_, mine) = call(&env, Method::GET, "/v1/organizations", &other, None).await;
    assert!(mine["data"].as_array().unwrap().is_empty());
}

async fn admins_list_search_create_and_add_members(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "boss@example.com").await;
    for slug in ["north-wind", "south-wind", "east-hill"] {
        let (status, body) = env
            .app
            .send(
                Method::POST,
                "/v1/admin/organizations",
                Some(&env.admin),
                Some(json!({ "owner_user_id": owner.id, "name": slug, "slug": slug })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, found) = env
        .app
        .send(Method::GET, "/v1/admin/organizations?search=WIND&limit=1", Some(&env.admin), None)
        .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    assert_eq!(found["data"][0]["slug"], "south-wind");
    let cursor = found["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = env
        .app
        .send(
            Method::GET,
            &format!("/v1/admin/organizations?search=wind&limit=1&cursor={cursor}"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(next["data"][0]["slug"], "north-wind");
    assert!(next["next_cursor"].is_null());
    let (_, mine) = call(&env, Method::GET, "/v1/organizations", &owner, None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 3);
    // A non-admin is refused the admin API.
    assert_eq!(
        env.app.send(Method::GET, "/v1/admin/organizations", Some(&owner.token), None).await.0,
        StatusCode::FORBIDDEN
    );
    // Adding twice, an unknown user or role.
    let org = found["data"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/admin/organizations/{org}/members");
    assert_eq!(
        env.app
            .send(
                Method::POST,
                &path,
                Some(&env.admin),
                Some(json!({ "user_id": owner.id, "role": "member" }))
            )
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        env.app
            .send(
                Method::POST,
                &path,
                Some(&env.admin),
                Some(json!({ "user_id": "usr_nobody", "role": "member" }))
            )
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, members) = env.app.send(Method::GET, &path, Some(&env.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members["data"][0]["role"], "owner");
    assert_eq!(
        env.app
            .send(Method::DELETE, &format!("/v1/admin/organizations/{org}"), Some(&env.admin), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.app
            .send(Method::GET, &format!("/v1/admin/organizations/{org}"), Some(&env.admin), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

async fn invitations_travel_by_email_and_land_the_invitee_in_the_organization(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "inviter@example.com").await;
    let helper = person(&env, "helper@example.com").await;
    let org = create(&env, &owner, "inviting").await;
    add(&env, &org, &helper, "member").await;
    let base = format!("/v1/organizations/{org}/invitations");

    // A member cannot invite; nobody grants what they lack (an admin inviting an owner).
    let denied = (StatusCode::FORBIDDEN, Some("permission_denied"));
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                &base,
                &helper,
                Some(json!({ "email": "x@example.com", "role": "member" }))
            )
            .await
        ),
        denied
    );
    call(
        &env,
        Method::PATCH,
        &format!("/v1/organizations/{org}/members/{}", helper.id),
        &owner,
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                &base,
                &helper,
                Some(json!({ "email": "x@example.com", "role": "owner" }))
            )
            .await
        ),
        denied
    );

    let (status, invitation) = call(
        &env,
        Method::POST,
        &base,
        &helper,
        Some(json!({ "email": "newcomer@example.com", "role": "member" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    assert_eq!(invitation["status"], "pending");
    assert!(invitation.get("token").is_none(), "the token travels only by email");
    let mail = wait_for_text(&env.sink, "newcomer@example.com", "/invitations/accept").await;
    assert!(mail.subject().contains("INVITING"), "{}", mail.subject());
    let token = mail.token_for("/invitations/accept").expect("a link with the token");

    // The hosted page sends a visitor to sign in first, and back.
    let browser =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = browser
        .get(env.app.url(&format!("/invitations/accept?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login?return_to=%2Finvitations%2Faccept"), "{location}");

    // Someone else cannot use it.
    let other = person(&env, "stranger@example.com").await;
    let answer =
        call(&env, Method::POST, "/v1/invitations/accept", &other, Some(json!({ "token": token })))
            .await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN);

    // The invitee signs up with the address and accepts: a member, the address verified.
    let newcomer = person(&env, "newcomer@example.com").await;
    let (_, me) = call(&env, Method::GET, "/v1/me", &newcomer, None).await;
    assert_eq!(me["email_verified"], false);
    let (status, membership) = call(
        &env,
        Method::POST,
        "/v1/invitations/accept",
        &newcomer,
        Some(json!({ "token": token })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{membership}");
    assert_eq!(membership["role"], "member");
    let (_, me) = call(&env, Method::GET, "/v1/me", &newcomer, None).await;
    assert_eq!(me["email_verified"], true);
    let (_, seen) =
        call(&env, Method::GET, &format!("/v1/organizations/{org}"), &newcomer, None).await;
    assert_eq!(seen["role"], "member");
    // Single use.
    let answer = call(
        &env,
        Method::POST,
        "/v1/invitations/accept",
        &newcomer,
        Some(json!({ "token": token })),
    )
    .await;
    assert_eq!(code(&answer), (StatusCode::BAD_REQUEST, Some("token_used")));
    let (_, list) = call(&env, Method::GET, &base, &owner, None).await;
    assert_eq!(list["data"][0]["status"], "accepted");

    // Revoked, declined and expired invitations do not work.
    let declined = person(&env, "declines@example.com").await;
    call(
        &env,
        Method::POST,
        &base,
        &owner,
        Some(json!({ "email": "declines@example.com", "role": "member" })),
    )
    .await;
    let token = invitation_token(&env, "declines@example.com").await;
    assert_eq!(
        call(
            &env,
            Method::POST,
            "/v1/invitations/decline",
            &declined,
            Some(json!({ "token": token }))
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                "/v1/invitations/accept",
                &declined,
                Some(json!({ "token": token }))
            )
            .await
        ),
        (StatusCode::BAD_REQUEST, Some("token_used"))
    );

    let (_, revoked) = call(
        &env,
        Method::POST,
        &base,
        &owner,
        Some(json!({ "email": "late@example.com", "role": "member" })),
    )
    .await;
    let token = invitation_token(&env, "late@example.com").await;
    let path = format!("{base}/{}", revoked["id"].as_str().unwrap());
    assert_eq!(call(&env, Method::DELETE, &path, &owner, None).await.0, StatusCode::NO_CONTENT);
    let late = person(&env, "late@example.com").await;
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                "/v1/invitations/accept",
                &late,
                Some(json!({ "token": token }))
            )
            .await
        ),
        (StatusCode::BAD_REQUEST, Some("token_used"))
    );

    call(
        &env,
        Method::POST,
        &base,
        &owner,
        Some(json!({ "email": "slow@example.com", "role": "member" })),
    )
    .await;
    let token = invitation_token(&env, "slow@example.com").await;
    env.clock.advance(7 * 24 * 3600 + 1);
    let slow = person(&env, "slow@example.com").await;
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                "/v1/invitations/accept",
                &slow,
                Some(json!({ "token": token }))
            )
            .await
        ),
        (StatusCode::BAD_REQUEST, Some("token_expired"))
    );
    assert_eq!(
        code(
            &call(
                &env,
                Method::POST,
                "/v1/invitations/accept",
                &slow,
                Some(json!({ "token": "nonsense" }))
            )
            .await
        ),
        (StatusCode::BAD_REQUEST, Some("invalid_token"))
    );
}

async fn invitation_token(env: &Env, address: &str) -> String {
    let mail = wait_for_text(&env.sink, address, "/invitations/accept").await;
    mail.token_for("/invitations/accept").unwrap()
}

async fn the_active_organization_rides_in_tokens_and_follows_role_changes_at_refresh(
    test: TestDatabase,
) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "chief@example.com").await;
    let tokens = env.app.sign_up("worker@example.com", support::STRONG_PASSWORD).await;
    let worker = Person {
        id: tokens["user"]["id"].as_str().unwrap().to_owned(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    };
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let org = create(&env, &owner, "claims").await;
    let other = create(&env, &owner, "elsewhere").await;
    add(&env, &org, &worker, "member").await;

    // Not a member of the other one: 404, nothing changes.
    let answer = call(
        &env,
        Method::POST,
        "/v1/me/organization",
        &worker,
        Some(json!({ "organization_id": other })),
    )
    .await;
    assert_eq!(code(&answer), (StatusCode::NOT_FOUND, Some("not_found")));

    let (status, switched) = call(
        &env,
        Method::POST,
        "/v1/me/organization",
        &worker,
        Some(json!({ "organization_id": org })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(switched["organization"]["org_role"], "member");
    let access = support::mfa::claims(switched["access_token"].as_str().unwrap());
    assert_eq!(access["org_id"], org.as_str());
    assert_eq!(access["org_slug"], "claims");
    assert_eq!(access["org_role"], "member");
    assert_eq!(access["org_permissions"], json!(["members:read", "org:read"]));

    // A role change shows at the next refresh, which keeps the organization.
    call(
        &env,
        Method::PATCH,
        &format!("/v1/organizations/{org}/members/{}", worker.id),
        &owner,
        Some(json!({ "role": "admin" })),
    )
    .await;
    let (status, refreshed) =
        env.app.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh_token })).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access = support::mfa::claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["org_role"], "admin");
    assert!(access["org_permissions"].as_array().unwrap().contains(&json!("members:manage")));

    // Removed from it: the next refresh carries no organization.
    call(
        &env,
        Method::DELETE,
        &format!("/v1/organizations/{org}/members/{}", worker.id),
        &owner,
        None,
    )
    .await;
    let next = refreshed["refresh_token"].as_str().unwrap();
    let (_, refreshed) =
        env.app.post("/v1/auth/refresh", None, json!({ "refresh_token": next })).await;
    let access = support::mfa::claims(refreshed["access_token"].as_str().unwrap());
    assert!(access.get("org_id").is_none(), "{access}");

    // With the session's refresh token the answer is a whole tokens answer: the token is spent,
    // its successor carries on. Another session's refresh token is refused and stays usable.
    let (status, other_session) =
        env.app.sign_in("worker@example.com", support::STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let other_refresh = other_session["refresh_token"].as_str().unwrap();
    add(&env, &other, &worker, "member").await;
    let worker =
        Person { id: worker.id, token: refreshed["access_token"].as_str().unwrap().to_owned() };
    let current_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let answer = call(
        &env,
        Method::POST,
        "/v1/me/organization",
        &worker,
        Some(json!({ "organization_id": other, "refresh_token": other_refresh })),
    )
    .await;
    assert_eq!(code(&answer), (StatusCode::UNAUTHORIZED, Some("invalid_grant")));
    let (status, _) =
        env.app.post("/v1/auth/refresh", None, json!({ "refresh_token": other_refresh })).await;
    assert_eq!(status, StatusCode::OK, "a refused token is not spent");
    let (status, switched) = call(
        &env,
        Method::POST,
        "/v1/me/organization",
        &worker,
        Some(json!({ "organization_id": other, "refresh_token": current_refresh })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(switched["user"]["email"], "worker@example.com");
    assert_eq!(switched["session_id"], claims_of(&worker.token)["sid"]);
    assert_eq!(
        support::mfa::claims(switched["access_token"].as_str().unwrap())["org_id"],
        other.as_str()
    );
    let next = switched["refresh_token"].as_str().unwrap();
    let (status, refreshed) =
        env.app.post("/v1/auth/refresh", None, json!({ "refresh_token": next })).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(
        support::mfa::claims(refreshed["access_token"].as_str().unwrap())["org_slug"],
        "elsewhere"
    );
    let worker =
        Person { id: worker.id, token: refreshed["access_token"].as_str().unwrap().to_owned() };

    // Clearing it.
    let (status, cleared) = call(
        &env,
        Method::POST,
        "/v1/me/organization",
        &worker,
        Some(json!({ "organization_id": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cleared["organization"].is_null());
}

/// `GET /v1/me/invitations` and the account page list the invitations sent to the user's
/// address; a verified address answers them there without the emailed token; another user
/// sees none and cannot answer them.
async fn invitations_wait_on_the_account_of_the_invited_address(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "host@example.com").await;
    let guest = person(&env, "guest@example.com").await;
    let other = person(&env, "other@example.com").await;
    let first = create(&env, &owner, "first").await;
    let second = create(&env, &owner, "second").await;
    for org in [&first, &second] {
        let (status, body) = call(
            &env,
            Method::POST,
            &format!("/v1/organizations/{org}/invitations"),
            &owner,
            Some(json!({ "email": "guest@example.com", "role": "admin" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, list) = call(&env, Method::GET, "/v1/me/invitations", &guest, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{list}");
    let names: Vec<&str> =
        data.iter().map(|item| item["organization_name"].as_str().unwrap()).collect();
    assert!(names.contains(&"FIRST") && names.contains(&"SECOND"), "{list}");
    assert!(data.iter().all(|item| item["role"] == "admin"));
    let (_, theirs) = call(&env, Method::GET, "/v1/me/invitations", &other, None).await;
    assert_eq!(theirs["data"], json!([]));
    let invitation = |org: &str| {
        data.iter().find(|item| item["organization_id"] == org).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (to_first, to_second) = (invitation(&first), invitation(&second));

    // Another user cannot answer it; an unverified address must verify first.
    let accept = format!("/v1/me/invitations/{to_first}/accept");
    assert_eq!(call(&env, Method::POST, &accept, &other, None).await.0, StatusCode::NOT_FOUND);
    let (status, problem) = call(&env, Method::POST, &accept, &guest, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = env
        .app
        .send(
            Method::PATCH,
            &format!("/v1/admin/users/{}", guest.id),
            Some(&env.admin),
            Some(json!({ "email_verified": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // On the account page: both listed, with their buttons; the API accepts one...
    let mut browser = support::oauth_browser::Browser::new(&env.app.base_url);
    let login = browser.get("/login?return_to=%2Faccount").await;
    let account = browser.sign_in(&login, "guest@example.com", support::STRONG_PASSWORD).await;
    let account = if account.status == StatusCode::SEE_OTHER {
        browser.get("/account").await
    } else {
        account
    };
    assert!(account.body.contains("Invitations waiting for you"), "{}", account.body);
    assert!(account.body.contains("FIRST") && account.body.contains("SECOND"), "{}", account.body);
    let (status, _) = call(&env, Method::POST, &accept, &guest, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&env, Method::POST, &accept, &guest, None).await.0, StatusCode::BAD_REQUEST);
    // ...the page declines the other.
    let csrf = account.field("csrf_token").unwrap();
    let declined = browser
        .post(
            "/account/invitations/answer",
            &[("csrf_token", &csrf), ("invitation_id", &to_second), ("answer", "decline")],
        )
        .await;
    assert_eq!(declined.location.as_deref(), Some("/account"), "{}", declined.body);
    let (_, list) = call(&env, Method::GET, "/v1/me/invitations", &guest, None).await;
    assert_eq!(list["data"], json!([]));
    let (_, mine) = call(&env, Method::GET, "/v1/organizations", &guest, None).await;
    let slugs: Vec<&str> =
        mine["data"].as_array().unwrap().iter().map(|org| org["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, vec!["first"], "{mine}");
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=invitation.declined", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    env.app.stop().await;
}

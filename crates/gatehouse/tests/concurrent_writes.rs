//! Concurrent writes to one account through the real router on both backends (#19, finding
//! 2): a sign-in in flight never undoes a suspension nor leaves a usable session for a
//! suspended user; a profile update never undoes a role change or a new password; of two
//! password changes from the same old password, one wins and the other fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    a_suspension_racing_sign_ins_stands_and_leaves_no_usable_session,
    profile_updates_racing_role_and_password_changes_undo_neither,
    of_two_password_changes_from_one_old_password_only_one_wins,
);

async fn a_suspension_racing_sign_ins_stands_and_leaves_no_usable_session(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let signed_up = app.sign_up("sam@example.com", STRONG_PASSWORD).await;
    let user_id = signed_up["user"]["id"].as_str().unwrap().to_owned();
    let admin = app.admin_key().await;
    // Four clients sign in over and over; each answer is reported as it comes.
    let (sender, mut answers) = tokio::sync::mpsc::unbounded_channel::<(StatusCode, Value)>();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (http, url, sender) = (app.http.clone(), app.url("/v1/auth/sign-in"), sender.clone());
        clients.spawn(async move {
            for _ in 0..8 {
                let body = json!({ "email": "sam@example.com", "password": STRONG_PASSWORD });
                let response = http.post(&url).json(&body).send().await.unwrap();
                let status = response.status();
                let _ = sender.send((status, response.json().await.unwrap()));
            }
        });
    }
    drop(sender);
    // Once sign-ins are flowing, the admin suspends the user, with more still in flight.
    let mut results = vec![answers.recv().await.unwrap()];
    let (status, _) =
        app.post(&format!("/v1/admin/users/{user_id}/suspend"), Some(&admin), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    while let Some(answer) = answers.recv().await {
        results.push(answer);
    }
    while clients.join_next().await.is_some() {}
    assert_eq!(results.len(), 32);
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::FORBIDDEN && body["code"] == "account_suspended"),
            "{status} {body}"
        );
    }
    // The suspension stands...
    let (_, user) = app.get_auth(&format!("/v1/admin/users/{user_id}"), &admin).await;
    assert_eq!(user["suspended"], true, "a sign-in in flight undid the suspension: {user}");
    // ...and no sign-in left a usable session: every access and refresh token fails.
    for (_, tokens) in results.iter().filter(|(status, _)| *status == StatusCode::OK) {
        let (status, _) = app.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{tokens}");
        let (status, _) = app
            .post("/v1/auth/refresh", None, json!({ "refresh_token": tokens["refresh_token"] }))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{tokens}");
    }
    let (status, problem) = app.sign_in("sam@example.com", STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    app.stop().await;
}

async fn profile_updates_racing_role_and_password_changes_undo_neither(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let signed_up = app.sign_up("uma@example.com", STRONG_PASSWORD).await;
    let token = signed_up["access_token"].as_str().unwrap().to_owned();
    let user_id = signed_up["user"]["id"].as_str().unwrap().to_owned();
    let admin = app.admin_key().await;
    let mut password = STRONG_PASSWORD.to_owned();
    for round in 0..6 {
        let new_password = format!("Quasar-trail-{round}-mix-81!");
        let is_admin = round % 2 == 0;
        // Profile updates, a role change by an admin and a password change, all at once.
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..4 {
            let (http, url, token) = (app.http.clone(), app.url("/v1/me"), token.clone());
            requests.spawn(async move {
                let body = json!({ "first_name": format!("Uma {round}.{n}") });
                http.patch(url).bearer_auth(token).json(&body).send().await.unwrap().status()
            });
        }
        {
            let (http, url, admin) =
                (app.http.clone(), app.url(&format!("/v1/admin/users/{user_id}")), admin.clone());
            requests.spawn(async move {
                let body = json!({ "admin": is_admin });
                http.patch(url).bearer_auth(admin).json(&body).send().await.unwrap().status()
            });
        }
        {
            let (http, url, token) = (app.http.clone(), app.url("/v1/me/password"), token.clone());
            let body = json!({ "current_password": password, "new_password": new_password });
            requests.spawn(async move {
                http.post(url).bearer_auth(token).json(&body).send().await.unwrap().status()
            });
        }
        while let Some(status) = requests.join_next().await {
            let status = status.unwrap();
            assert!(status.is_success(), "round {round}: {status}");
        }
        let (_, user) = app.get_auth(&format!("/v1/admin/users/{user_id}"), &admin).await;
        let role = if is_admin { json!("admin") } else { Value::Null };
        assert_eq!(user["system_role"], role, "round {round}: the role change was undone: {user}");
        let (status, _) = app.sign_in("uma@example.com", &new_password).await;
        assert_eq!(status, StatusCode::OK, "round {round}: the new password was undone");
        password = new_password;
    }
    app.stop().await;
}

async fn of_two_password_changes_from_one_old_password_only_one_wins(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let signed_up = app.sign_up("vic@example.com", STRONG_PASSWORD).await;
    let token = signed_up["access_token"].as_str().unwrap().to_owned();
    let candidates = ["Velvet-harbour-one-11!", "Velvet-harbour-two-22!"];
    let mut changes = tokio::task::JoinSet::new();
    for new_password in candidates {
        let (http, url, token) = (app.http.clone(), app.url("/v1/me/password"), token.clone());
        let body = json!({ "current_password": STRONG_PASSWORD, "new_password": new_password });
        changes.spawn(async move {
            let response = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = response.status();
            let body: Value = if status == StatusCode::NO_CONTENT {
                Value::Null
            } else {
                response.json().await.unwrap()
            };
            (new_password, status, body)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = changes.join_next().await {
        outcomes.push(outcome.unwrap());
    }
    let winners: Vec<_> =
        outcomes.iter().filter(|(_, status, _)| *status == StatusCode::NO_CONTENT).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    // The loser either found the hash it replaces gone (409 conflict) or, if it came after
    // the winner's commit, a wrong current password.
    let (_, status, body) =
        outcomes.iter().find(|(_, status, _)| *status != StatusCode::NO_CONTENT).unwrap();
    assert!(
        (*status == StatusCode::CONFLICT && body["code"] == "conflict")
            || (*status == StatusCode::UNPROCESSABLE_ENTITY
                && body["errors"][0]["field"] == "current_password"),
        "{status} {body}"
    );
    let winner = winners[0].0;
    let loser = candidates.iter().find(|candidate| **candidate != winner).unwrap();
    assert_eq!(app.sign_in("vic@example.com", winner).await.0, StatusCode::OK);
    assert_eq!(app.sign_in("vic@example.com", loser).await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

//! The account page's passkeys section as the template sees it (the list, whether passkeys
//! can be added, whether to offer one), kept apart from `passkeys` so the account page and
//! the passkey handlers each import the other's part without a circle.

use gatehouse_domain::DomainError;

use crate::state::AppState;

/// The account page's passkeys section: whether passkeys can be added here, the list (name,
/// created, last used, synced or device-bound, flagged), and whether to offer adding one (a
/// password sign-in of an account that has none yet).
pub(crate) async fn passkeys_view(
    state: &AppState,
    principal: &gatehouse_domain::principal::Principal,
    locale: crate::locale::Locale,
) -> Result<minijinja::Value, DomainError> {
    let passkeys = state.accounts.passkeys.list(principal).await?;
    let available = state.accounts.passkeys.available();
    let by_password = principal
        .session
        .amr
        .as_deref()
        .is_some_and(|amr| amr.split_whitespace().any(|method| method == "pwd"));
    let items: Vec<minijinja::Value> = passkeys
        .iter()
        .map(|passkey| {
            minijinja::context! {
                id => passkey.id.clone(),
                name => passkey.name.clone(),
                created => date(passkey.created_at, locale),
                last_used => passkey.last_used_at.map(|at| date(at, locale)),
                synced => passkey.synced,
                flagged => passkey.flagged_at.is_some(),
            }
        })
        .collect();
    Ok(minijinja::context! {
        available => available,
        items => items,
        offer => available && by_password && passkeys.is_empty(),
    })
}

/// A UTC calendar date of a Unix time: `2026-12-06` in English, `06/12/2026` in French (also
/// the linked accounts' dates).
pub(crate) fn date(unix_seconds: i64, locale: crate::locale::Locale) -> String {
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
    let days = unix_seconds.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    match locale {
        crate::locale::Locale::En => format!("{year:04}-{month:02}-{day:02}"),
        crate::locale::Locale::Fr => format!("{day:02}/{month:02}/{year:04}"),
    }
}

#[cfg(test)]
mod tests {
    use super::date;
    use crate::locale::Locale;

    #[test]
    fn dates_are_utc_calendar_days() {
        let cases = [
            (0, "1970-01-01"),
            (951_782_400, "2000-02-29"),
            (1_798_761_599, "2026-12-31"),
            (1_798_761_600, "2027-01-01"),
            (-1, "1969-12-31"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(date(seconds, Locale::En), expected, "{seconds}");
        }
        assert_eq!(date(951_782_400, Locale::Fr), "29/02/2000");
    }
}

-- What a one-time token carries besides its purpose, sealed: for change_email, the new
-- address under the email cipher for the user's row (AD = the user id), applied when the
-- link sent to that address is followed.
ALTER TABLE one_time_tokens ADD COLUMN payload BLOB;

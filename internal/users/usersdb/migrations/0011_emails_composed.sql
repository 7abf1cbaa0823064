-- From 2026-12-07 emails are stored composed, in Unicode's canonical
-- composition (NFC, users.ComposeEmail): "é" as U+00E9, never as "e"
-- followed by the combining U+0301, so that the spellings of one address
-- that Unicode declares equivalent are one account, found by either. An
-- account registered before with an uncomposed email is rewritten to the
-- composed form, unless another account already holds that form (both
-- spellings were registered, each with its own password) or an older
-- account composes to it too: that account keeps its spelling, and logs
-- in with it (usersdb.Store.Authenticate looks an address up as sent too).
-- So does an address longer than 254 characters once composed (registration
-- accepted 254 as sent, and U+0958 composes into two characters): composed,
-- it would break the length CHECK of 0001 and roll the whole migration back,
-- leaving every users writer unable to start.
-- normalize() and IS NFC NORMALIZED need a UTF8 database, which every shop
-- database is (the postgres image's and initdb's default here); in any
-- other encoding nothing is rewritten.
DO $$
BEGIN
	IF current_setting('server_encoding') = 'UTF8' THEN
		UPDATE users u SET email = c.composed, updated_at = now()
		FROM (SELECT DISTINCT ON (lower(normalize(email, NFC))) id, normalize(email, NFC) AS composed
				FROM users WHERE email IS NOT NFC NORMALIZED
					AND char_length(normalize(email, NFC)) <= 254
				ORDER BY lower(normalize(email, NFC)), created_at, id) c
		WHERE u.id = c.id
			AND NOT EXISTS (SELECT 1 FROM users o WHERE lower(o.email) = lower(c.composed));
	END IF;
END
$$;

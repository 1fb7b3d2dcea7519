-- Why the TPP asks, in its own words (the `purpose` parameter of OpenID Connect for Identity
-- Assurance 1.0, accepted at CIBA's backchannel endpoint as at PAR): the bank app shows it beside the
-- binding message, as the consent screen shows it (issue 18 point 4). Validated before it is stored
-- (3 to 300 characters, no control characters); absent when the TPP sent none. Re-runnable.
ALTER TABLE decoupled_request ADD COLUMN IF NOT EXISTS purpose text;

-- Bank customers for the built-in customer directory (the sandbox's demo customers). A bank that
-- plugs in its own identity provider leaves this table empty.
CREATE TABLE customer (
  id            text        PRIMARY KEY,
  username      text        NOT NULL UNIQUE,
  password_hash text        NOT NULL,
  name          text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

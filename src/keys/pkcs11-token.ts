import { readFileSync } from 'node:fs';
import type * as Graphene from 'graphene-pk11';
import type { Pkcs11Config } from '../config/schema.ts';

/*
 * The bank's HSM as a PKCS#11 token, through graphene-pk11 (PeculiarVentures' binding over
 * pkcs11js). Moat opens a few sessions, logs in with the user PIN and asks the token to sign; the
 * private keys never leave it (CKA_SENSITIVE, not CKA_EXTRACTABLE). Every failure of the token is
 * classified once, here, so that start-up can refuse naming the configuration key to fix and the
 * signing path can answer 503 with a reason an operator can alert on.
 */

/** Why the token could not be used: a closed set, so it can label a metric. */
export type HsmFailureReason =
  | 'binding_missing'
  | 'library_unavailable'
  | 'token_missing'
  | 'pin_incorrect'
  | 'pin_locked'
  | 'session_limit'
  | 'not_logged_in'
  | 'key_missing'
  | 'device_error';

/** The configuration key an operator looks at for each reason. */
const CONFIG_KEY: Record<HsmFailureReason, string> = {
  binding_missing: 'keys.source',
  library_unavailable: 'keys.pkcs11.library',
  token_missing: 'keys.pkcs11.tokenLabel',
  pin_incorrect: 'keys.pkcs11.pin',
  pin_locked: 'keys.pkcs11.pin',
  session_limit: 'keys.pkcs11.maxSessions',
  not_logged_in: 'keys.pkcs11.pin',
  key_missing: 'keys.pkcs11.tokenLabel',
  device_error: 'keys.pkcs11.library',
};

/** The token cannot serve: start-up refuses with it, the signing path answers 503 with it. */
export class HsmUnavailableError extends Error {
  readonly reason: HsmFailureReason;
  /** The moat.yaml key to check. */
  readonly configKey: string;
  constructor(reason: HsmFailureReason, message: string, options?: { cause?: unknown }) {
    super(`${CONFIG_KEY[reason]}: ${message}`, options);
    this.name = 'HsmUnavailableError';
    this.reason = reason;
    this.configKey = CONFIG_KEY[reason];
  }
}

/** PKCS#11 v2.40 §5.1 return values (CKR_*), as pkcs11js reports them in `code`. */
const CKR = {
  GENERAL_ERROR: 0x05,
  FUNCTION_FAILED: 0x06,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  KEY_HANDLE_INVALID: 0x60,
  OBJECT_HANDLE_INVALID: 0x82,
  PIN_INCORRECT: 0xa0,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  SLOT_ID_INVALID: 0x03,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;

/**
 * PKCS#11 v2.40 §5.4 C_Initialize: CKF_OS_LOCKING_OK. pkcs11js signs on worker threads, one session
 * each, so the library must lock for itself; without it SoftHSM crashes the process under
 * concurrent signatures.
 */
const CKF_OS_LOCKING_OK = 0x2;

function initialize(module: Graphene.Module): void {
  try {
    module.initialize({ flags: CKF_OS_LOCKING_OK });
  } catch (err) {
    // Initialised already in this process (a module registry of its own, as a test runner keeps).
    if ((err as { code?: unknown }).code !== CKR.CRYPTOKI_ALREADY_INITIALIZED) throw err;
  }
}

/** The reason behind a PKCS#11 error; anything unrecognised is a device error. */
export function classifyPkcs11Error(err: unknown): HsmFailureReason {
  if (err instanceof HsmUnavailableError) return err.reason;
  switch ((err as { code?: unknown } | undefined)?.code) {
    case CKR.PIN_INCORRECT:
    case CKR.PIN_EXPIRED:
      return 'pin_incorrect';
    case CKR.PIN_LOCKED:
      return 'pin_locked';
    case CKR.SESSION_COUNT:
      return 'session_limit';
    case CKR.USER_NOT_LOGGED_IN:
      return 'not_logged_in';
    case CKR.TOKEN_NOT_PRESENT:
    case CKR.TOKEN_NOT_RECOGNIZED:
    case CKR.DEVICE_REMOVED:
    case CKR.SLOT_ID_INVALID:
    case CKR.SESSION_CLOSED:
    case CKR.SESSION_HANDLE_INVALID:
    case CKR.CRYPTOKI_NOT_INITIALIZED:
      return 'token_missing';
    case CKR.KEY_HANDLE_INVALID:
    case CKR.OBJECT_HANDLE_INVALID:
      return 'key_missing';
    default:
      return 'device_error';
  }
}

const DESCRIPTION: Record<HsmFailureReason, string> = {
  binding_missing: 'the PKCS#11 binding (graphene-pk11) is not installed',
  library_unavailable: 'the PKCS#11 library could not be loaded',
  token_missing: 'the token is not present',
  pin_incorrect: 'the token refused the PIN',
  pin_locked: "the token's PIN is locked (too many wrong PINs)",
  session_limit: 'the token has no session left',
  not_logged_in: "the token's login was lost",
  key_missing: 'the key is no longer in the token',
  device_error: 'the token failed',
};

/** Wraps any failure of the token in an HsmUnavailableError saying what happened. */
export function hsmFailure(err: unknown, doing: string): HsmUnavailableError {
  if (err instanceof HsmUnavailableError) return err;
  const reason = classifyPkcs11Error(err);
  const code = (err as Error | undefined)?.message;
  return new HsmUnavailableError(reason, `${DESCRIPTION[reason]} while ${doing}${code === undefined ? '' : ` (${code.split('\n')[0]})`}`, { cause: err });
}

/** Failures a fresh connection may cure: the token went away (and may be back), the login was lost. */
const RECONNECT_ON = new Set<HsmFailureReason>(['token_missing', 'not_logged_in', 'key_missing']);

type GrapheneModule = typeof Graphene;

/**
 * One loaded PKCS#11 library. PKCS#11 state (C_Initialize, logins) belongs to the process, not to a
 * caller, so every token opened on the same library shares this one; `generation` counts
 * re-initialisations, after which sessions opened before are gone.
 */
interface LoadedLibrary {
  graphene: GrapheneModule;
  module: Graphene.Module;
  users: number;
  generation: number;
}
const libraries = new Map<string, LoadedLibrary>();

async function loadGraphene(): Promise<GrapheneModule> {
  try {
    return await import('graphene-pk11');
  } catch (err) {
    throw new HsmUnavailableError(
      'binding_missing',
      `keys.source pkcs11 needs the graphene-pk11 package, which builds pkcs11js (a C++ compiler and Python are needed at npm install): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

async function acquireLibrary(path: string): Promise<LoadedLibrary> {
  const loaded = libraries.get(path);
  if (loaded !== undefined) {
    loaded.users += 1;
    return loaded;
  }
  const graphene = await loadGraphene();
  let module: Graphene.Module;
  try {
    module = graphene.Module.load(path);
    initialize(module);
  } catch (err) {
    throw new HsmUnavailableError('library_unavailable', `${path} could not be loaded as a PKCS#11 library: ${(err as Error).message}`, { cause: err });
  }
  const library = { graphene, module, users: 1, generation: 0 };
  libraries.set(path, library);
  return library;
}

function releaseLibrary(path: string, library: LoadedLibrary): void {
  library.users -= 1;
  if (library.users > 0) return;
  libraries.delete(path);
  try {
    library.module.finalize();
    library.module.close();
  } catch {
    // Already gone with the token: nothing left to release.
  }
}

/** A logged-in connection to the token, with a small pool of sessions. */
export interface Pkcs11Token {
  readonly label: string;
  readonly graphene: GrapheneModule;
  /** Runs `use` with a logged-in read-write session of its own, returned to the pool after. */
  withSession<T>(use: (session: Graphene.Session) => Promise<T> | T): Promise<T>;
  /**
   * Forgets every session and re-initialises the library, so that the next call finds the token
   * anew: after a failure, a token that was removed and is back (or a restarted network HSM) works
   * again without restarting Moat.
   */
  reconnect(): void;
  close(): void;
}

function readPin(config: Pkcs11Config): string {
  if (config.pin !== undefined) return config.pin;
  try {
    return readFileSync(config.pinFile!, 'utf8').trim();
  } catch (err) {
    throw new HsmUnavailableError('pin_incorrect', `pinFile ${config.pinFile} could not be read: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Loads the library, finds the token by label and logs in with one session. Throws an
 * HsmUnavailableError naming the configuration key when any of it fails.
 */
export async function openPkcs11Token(config: Pkcs11Config): Promise<Pkcs11Token> {
  const pin = readPin(config);
  const library = await acquireLibrary(config.library);
  const { graphene } = library;
  let idle: Graphene.Session[] = [];
  let open = 0;
  let generation = library.generation;
  let slot: Graphene.Slot | undefined;
  const waiting: { resolve: (session: Graphene.Session) => void; reject: (err: unknown) => void }[] = [];

  const findSlot = (): Graphene.Slot => {
    const slots = library.module.getSlots(true);
    for (let i = 0; i < slots.length; i += 1) {
      const candidate = slots.items(i);
      if (candidate.getToken().label === config.tokenLabel) return candidate;
    }
    throw new HsmUnavailableError('token_missing', `no token labelled "${config.tokenLabel}" in ${config.library}`);
  };

  const forgetSessions = () => {
    idle = [];
    open = 0;
    slot = undefined;
  };

  const openSession = (): Graphene.Session => {
    slot ??= findSlot();
    const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      // PKCS#11 §5.6: a login covers every session of the application with the token.
      session.login(pin, graphene.UserType.USER);
    } catch (err) {
      if ((err as { code?: unknown }).code !== CKR.USER_ALREADY_LOGGED_IN) {
        session.close();
        throw err;
      }
    }
    return session;
  };

  const acquire = async (): Promise<Graphene.Session> => {
    // Another token on this library re-initialised it: every session opened before is gone.
    if (generation !== library.generation) {
      forgetSessions();
      generation = library.generation;
    }
    const ready = idle.pop();
    if (ready !== undefined) return ready;
    if (open < config.maxSessions) {
      open += 1;
      try {
        return openSession();
      } catch (err) {
        open -= 1;
        // Another application took the token's last session: wait for one of ours, if we have one.
        if (classifyPkcs11Error(err) !== 'session_limit' || open === 0) throw hsmFailure(err, `opening a session with token "${config.tokenLabel}"`);
      }
    }
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };

  const release = (session: Graphene.Session, healthy: boolean) => {
    if (!healthy) {
      try {
        session.close();
      } catch {
        // The session died with the token.
      }
      open = Math.max(0, open - 1);
      const next = waiting.shift();
      if (next !== undefined) acquire().then(next.resolve, next.reject);
      return;
    }
    const next = waiting.shift();
    if (next !== undefined) next.resolve(session);
    else idle.push(session);
  };

  const useOnce = async <T>(use: (session: Graphene.Session) => Promise<T> | T): Promise<T> => {
    const session = await acquire();
    let healthy = true;
    try {
      return await use(session);
    } catch (err) {
      healthy = !RECONNECT_ON.has(classifyPkcs11Error(err));
      throw err;
    } finally {
      release(session, healthy && generation === library.generation);
    }
  };

  const token: Pkcs11Token = {
    label: config.tokenLabel,
    graphene,
    async withSession(use) {
      const before = library.generation;
      try {
        return await useOnce(use);
      } catch (err) {
        if (!RECONNECT_ON.has(classifyPkcs11Error(err))) throw hsmFailure(err, `using token "${config.tokenLabel}"`);
      }
      // Once, and only if no one else already did since this call began.
      try {
        if (library.generation === before) token.reconnect();
        return await useOnce(use);
      } catch (err) {
        throw hsmFailure(err, `using token "${config.tokenLabel}"`);
      }
    },
    reconnect() {
      forgetSessions();
      try {
        library.module.finalize();
      } catch {
        // Finalising a library whose token went away can fail; initialising again is what counts.
      }
      initialize(library.module);
      library.generation += 1;
    },
    close() {
      for (const session of idle) {
        try {
          session.close();
        } catch {
          // Gone with the token.
        }
      }
      forgetSessions();
      releaseLibrary(config.library, library);
    },
  };
  // Log in now: a missing token or a wrong PIN stops the start, not the first signature.
  try {
    await token.withSession(() => undefined);
  } catch (err) {
    token.close();
    throw hsmFailure(err, `logging in to token "${config.tokenLabel}"`);
  }
  return token;
}

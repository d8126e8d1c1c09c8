//! Key-encryption keys in a PKCS#11 token (an HSM in production, SoftHSM2
//! in the tests), through `cryptoki`. The key file names such a version
//! `kek N pkcs11:LABEL`: the AES-256 key with that label in the token
//! (`EMETERAI_PKCS11_TOKEN`, logged in with `EMETERAI_PKCS11_PIN`) wraps and
//! unwraps data keys with AES-GCM inside the token; it is made sensitive
//! and not extractable, so it never leaves it. The blind-index key stays in
//! the key file (every lookup needs it; a token round trip per lookup
//! would cost more than the index protects).

use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::domain::sealed::TokenKek;

/// Where the token is: its module, its label and the user PIN.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub module: std::path::PathBuf,
    pub token: String,
    pub pin: String,
}

/// A logged-in session on the token, shared by the keys found in it (a
/// PKCS#11 session serves one call at a time).
pub struct Token {
    session: Mutex<Session>,
    // Kept alive for the session (and finalised when dropped).
    _context: Pkcs11,
}

/// A PKCS#11 module is initialised once per process: every instance of
/// the application in it (tests run several) shares its sessions.
static OPEN: Mutex<Vec<(std::path::PathBuf, String, Arc<Token>)>> = Mutex::new(Vec::new());

impl Token {
    /// The logged-in token `config` names (opened once per process).
    pub fn open(config: &TokenConfig) -> Result<Arc<Token>, String> {
        let mut open = OPEN.lock().expect("token table lock");
        if let Some((_, _, token)) = open
            .iter()
            .find(|(module, label, _)| *module == config.module && *label == config.token)
        {
            return Ok(token.clone());
        }
        let token = Self::open_new(config)?;
        open.push((config.module.clone(), config.token.clone(), token.clone()));
        Ok(token)
    }

    fn open_new(config: &TokenConfig) -> Result<Arc<Token>, String> {
        let context = Pkcs11::new(&config.module)
            .map_err(|e| format!("cannot load {}: {e}", config.module.display()))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => return Err(format!("cannot initialise the PKCS#11 module: {e}")),
        }
        let slot = context
            .get_slots_with_token()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|slot| {
                context
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label() == config.token)
            })
            .ok_or_else(|| format!("no token labelled {:?}", config.token))?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| format!("cannot open a session: {e}"))?;
        session
            .login(
                UserType::User,
                Some(&AuthPin::new(config.pin.clone().into())),
            )
            .map_err(|e| format!("cannot log in (EMETERAI_PKCS11_PIN): {e}"))?;
        Ok(Arc::new(Token {
            session: Mutex::new(session),
            _context: context,
        }))
    }

    fn find(&self, label: &str) -> Result<ObjectHandle, String> {
        let session = self.session.lock().expect("token session lock");
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(|e| e.to_string())?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no key labelled {label:?} in the token")),
            _ => Err(format!("more than one key labelled {label:?} in the token")),
        }
    }

    /// The key labelled `label`, as a key-encryption key.
    pub fn key(self: &Arc<Self>, label: &str) -> Result<Box<dyn TokenKek>, String> {
        let handle = self.find(label)?;
        Ok(Box::new(TokenKey {
            token: self.clone(),
            handle,
        }))
    }

    /// Makes a new AES-256 key labelled `label` in the token: sensitive,
    /// never extractable, for encrypting and decrypting only.
    pub fn generate_key(&self, label: &str) -> Result<(), String> {
        if self.find(label).is_ok() {
            return Err(format!("a key labelled {label:?} is already in the token"));
        }
        let session = self.session.lock().expect("token session lock");
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                ],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

struct TokenKey {
    token: Arc<Token>,
    handle: ObjectHandle,
}

impl TokenKey {
    fn run(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &[u8],
        encrypt: bool,
    ) -> Result<Vec<u8>, String> {
        let mut iv = *nonce;
        let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(|e| e.to_string())?;
        let mechanism = Mechanism::AesGcm(params);
        let session = self.token.session.lock().expect("token session lock");
        let result = if encrypt {
            session.encrypt(&mechanism, self.handle, data)
        } else {
            session.decrypt(&mechanism, self.handle, data)
        };
        result.map_err(|e| e.to_string())
    }
}

impl TokenKek for TokenKey {
    fn encrypt(&self, nonce: &[u8; 12], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
        self.run(nonce, aad, plain, true)
    }

    fn decrypt(&self, nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
        self.run(nonce, aad, sealed, false)
    }
}

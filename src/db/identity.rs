//! A citizen's identity fields (email, NIK, name, birth date, phone, NPWP)
//! sealed at rest in `registrations` and `accounts`: together, as one
//! sealed value per row (`sealed`), under the row's own data key
//! (`data_key_id`), bound to `<table>.identity:<row id>`.
//!
//! Once a row is sealed its `email` and `nik` columns hold blind indexes
//! (`ix1:` and the HMAC-SHA256 of the normalised value under the key
//! file's index key), so lookups and the UNIQUE constraints work without
//! the plaintext, race-safe on both backends as before; `full_name`,
//! `birth_date`, `phone` and `npwp` are emptied. A row an earlier version
//! wrote in clear (`sealed` NULL) is read as it is until the background
//! batch seals it, so lookups match either form meanwhile.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde::{Deserialize, Serialize};

use super::DbConn;
use crate::domain::sealed::{self, DataKey, KeyRing, SealError};

/// Marks a column value that is a blind index, not the value.
pub const INDEX_PREFIX: &str = "ix1:";

/// The identity fields, as sealed. They carry the names of the identity
/// columns of `registrations` and `accounts` on purpose (the rows list
/// them again, in the tables' column order): `identity_of!`,
/// `identity_row!` and `sealed_columns!` rely on the names matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub email: String,
    pub nik: String,
    pub full_name: String,
    pub birth_date: String,
    pub phone: String,
    pub npwp: Option<String>,
}

/// The identity fields of a row or form that names them as `Identity`
/// does (a registration, an account, a submission's details), copied.
macro_rules! identity_of {
    ($row:expr) => {
        $crate::db::identity::Identity {
            email: $row.email.clone(),
            nik: $row.nik.clone(),
            full_name: $row.full_name.clone(),
            birth_date: $row.birth_date.clone(),
            phone: $row.phone.clone(),
            npwp: $row.npwp.clone(),
        }
    };
}
pub(crate) use identity_of;

/// `opened` (the identity fields in clear, opened when sealed) and
/// `identity` for a row type whose columns are named as `Identity`'s
/// fields (`registrations`, `accounts`), and the module's `opened` for a
/// row a query may have found.
macro_rules! identity_row {
    ($row:ty, $table:literal) => {
        impl $row {
            /// The identity fields in clear: opened when sealed.
            pub fn opened(
                mut self,
                conn: &mut $crate::db::DbConn,
                ring: &$crate::domain::sealed::KeyRing,
            ) -> diesel::QueryResult<Self> {
                if let Some(stored) = self.sealed.take() {
                    let open = $crate::db::identity::open(conn, ring, $table, &self.id, &stored)?;
                    self.email = open.email;
                    self.nik = open.nik;
                    self.full_name = open.full_name;
                    self.birth_date = open.birth_date;
                    self.phone = open.phone;
                    self.npwp = open.npwp;
                    self.sealed = Some(stored);
                }
                Ok(self)
            }

            pub fn identity(&self) -> $crate::db::identity::Identity {
                $crate::db::identity::identity_of!(self)
            }
        }

        /// Opens the row a query found, if any.
        fn opened(
            conn: &mut $crate::db::DbConn,
            ring: &$crate::domain::sealed::KeyRing,
            found: Option<$row>,
        ) -> diesel::QueryResult<Option<$row>> {
            found.map(|row| row.opened(conn, ring)).transpose()
        }
    };
}
pub(crate) use identity_row;

pub fn email_index(ring: &KeyRing, email: &str) -> String {
    format!("{INDEX_PREFIX}{}", ring.blind_index("email", email))
}

pub fn nik_index(ring: &KeyRing, nik: &str) -> String {
    format!("{INDEX_PREFIX}{}", ring.blind_index("nik", nik))
}

/// What a lookup by email matches: the index of sealed rows, and the
/// address itself in rows not sealed yet.
pub fn email_keys(ring: &KeyRing, email: &str) -> [String; 2] {
    [email_index(ring, email), email.to_string()]
}

pub fn nik_keys(ring: &KeyRing, nik: &str) -> [String; 2] {
    [nik_index(ring, nik), nik.to_string()]
}

fn aad(table: &str, row: &str) -> String {
    sealed::aad(table, "identity", row)
}

/// A row's identity as written: the blind indexes for `email` and `nik`,
/// and the sealed value.
pub struct Sealed {
    pub email_index: String,
    pub nik_index: String,
    pub sealed: Vec<u8>,
}

pub fn seal(ring: &KeyRing, key: &DataKey, table: &str, row: &str, identity: &Identity) -> Sealed {
    let plain = serde_json::to_vec(identity).expect("identity serialises");
    Sealed {
        email_index: email_index(ring, &identity.email),
        nik_index: nik_index(ring, &identity.nik),
        sealed: key.seal(&aad(table, row), &plain),
    }
}

/// The identity columns of a sealed row of `$table` (`registrations` and
/// `accounts` name them alike): the blind indexes, the plain columns
/// emptied, the sealed value and its data key. Written with `.set(...)`
/// or `.values(...)`, alone or in a tuple with the query's other columns.
macro_rules! sealed_columns {
    ($name:ident, $table:ident) => {
        #[derive(AsChangeset, Insertable)]
        #[diesel(table_name = crate::schema::$table, treat_none_as_null = true)]
        pub struct $name<'a> {
            email: &'a str,
            nik: &'a str,
            full_name: &'a str,
            birth_date: &'a str,
            phone: &'a str,
            npwp: Option<&'a str>,
            sealed: &'a [u8],
            data_key_id: &'a str,
        }

        impl<'a> $name<'a> {
            pub fn of(sealed: &'a Sealed, key: &'a DataKey) -> Self {
                $name {
                    email: &sealed.email_index,
                    nik: &sealed.nik_index,
                    full_name: "",
                    birth_date: "",
                    phone: "",
                    npwp: None,
                    sealed: &sealed.sealed,
                    data_key_id: key.id(),
                }
            }
        }
    };
}

sealed_columns!(SealedRegistration, registrations);
sealed_columns!(SealedAccount, accounts);

/// Why a row's identity could not be read, as a diesel error (so queries
/// keep their types): the web layer answers it with a 503 page.
fn unreadable(table: &str, row: &str, key: &str, e: SealError) -> DieselError {
    tracing::error!(table, row, key, error = %e, "sealed identity data does not open");
    DieselError::DeserializationError(Box::new(e))
}

/// A fresh data key (`KeyRing::new_data_key`); a token that does not
/// answer is an error the web layer answers with a 503.
pub fn new_key(ring: &KeyRing) -> QueryResult<(sealed::WrappedKey, DataKey)> {
    ring.new_data_key()
        .map_err(|e| DieselError::DeserializationError(Box::new(e)))
}

/// Whether `error` is a value whose data key is gone (`SealError::KeyGone`):
/// read again, the row it came from is gone too.
pub fn key_gone(error: &DieselError) -> bool {
    matches!(error, DieselError::DeserializationError(inner)
        if matches!(inner.downcast_ref::<SealError>(), Some(SealError::KeyGone(_))))
}

/// The data key a row's value names, unwrapped.
pub fn data_key(conn: &mut DbConn, ring: &KeyRing, key_id: &str) -> QueryResult<DataKey> {
    let wrapped = super::keys::find(conn, key_id)?.ok_or_else(|| {
        DieselError::DeserializationError(Box::new(SealError::KeyGone(key_id.to_string())))
    })?;
    ring.unwrap(&wrapped)
        .map_err(|e| DieselError::DeserializationError(Box::new(e)))
}

/// Opens a row's sealed identity.
pub fn open(
    conn: &mut DbConn,
    ring: &KeyRing,
    table: &str,
    row: &str,
    stored: &[u8],
) -> QueryResult<Identity> {
    let key_id = sealed::sealed_key_id(stored)
        .ok_or_else(|| unreadable(table, row, "?", SealError::Malformed))?
        .to_string();
    let key = data_key(conn, ring, &key_id).map_err(|e| match e {
        DieselError::DeserializationError(inner) => match inner.downcast::<SealError>() {
            Ok(seal) => unreadable(table, row, &key_id, *seal),
            Err(other) => DieselError::DeserializationError(other),
        },
        other => other,
    })?;
    let plain = key
        .open(&aad(table, row), stored)
        .map_err(|e| unreadable(table, row, &key_id, e))?;
    serde_json::from_slice(&plain)
        .map_err(|_| unreadable(table, row, &key_id, SealError::Malformed))
}

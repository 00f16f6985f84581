//! Product keys: generated when a package is paid, stored encrypted (AES-256-GCM, the
//! entitlement id as associated data so a ciphertext cannot be moved to another row), and
//! decrypted only to answer `revealProductKey`. The plain key exists only in a reveal
//! response: it is never logged or audited.
//!
//! Each row names the key-encryption key that encrypted it (`key_id`, from the ring
//! KEY_ENCRYPTION_KEYS): new rows use the ring's first key, and [`rotate`] moves old rows to
//! it, so a key can be retired once no row names it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;
use uuid::Uuid;

use crate::config::Keyring;
use crate::db::schema::product_keys;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};

const ALPHABET: &[u8] = b"BCDFGHJKMPQRTVWXY2346789";

/// A 25-character key in five groups, like the real ones.
pub fn generate() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| {
            (0..5)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Encrypts under the ring's current key: (key id, nonce, ciphertext).
pub fn encrypt(
    ring: &Keyring,
    entitlement_id: Uuid,
    key: &str,
) -> AppResult<(String, Vec<u8>, Vec<u8>)> {
    let (id, master) = ring.current();
    let (nonce, ct) = encrypt_with(master, entitlement_id, key)?;
    Ok((id.to_owned(), nonce, ct))
}

/// Decrypts a row encrypted under the ring's key `key_id`.
pub fn decrypt(
    ring: &Keyring,
    entitlement_id: Uuid,
    key_id: &str,
    nonce: &[u8],
    ct: &[u8],
) -> AppResult<String> {
    let master = ring.get(key_id).ok_or_else(|| {
        AppError::Internal(format!(
            "product key was encrypted under key `{key_id}`, which KEY_ENCRYPTION_KEYS no longer holds"
        ))
    })?;
    decrypt_with(master, entitlement_id, nonce, ct)
}

fn encrypt_with(
    master: &[u8; 32],
    entitlement_id: Uuid,
    key: &str,
) -> AppResult<(Vec<u8>, Vec<u8>)> {
    let cipher = Aes256Gcm::new_from_slice(master).map_err(AppError::internal)?;
    let mut nonce = [0u8; 12];
    rand::rng().fill(&mut nonce);
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: key.as_bytes(),
                aad: entitlement_id.as_bytes(),
            },
        )
        .map_err(|_| AppError::Internal("product key encryption failed".into()))?;
    Ok((nonce.to_vec(), ct))
}

fn decrypt_with(
    master: &[u8; 32],
    entitlement_id: Uuid,
    nonce: &[u8],
    ct: &[u8],
) -> AppResult<String> {
    let cipher = Aes256Gcm::new_from_slice(master).map_err(AppError::internal)?;
    let nonce: [u8; 12] = nonce
        .try_into()
        .map_err(|_| AppError::Internal("product key nonce is malformed".into()))?;
    let plain = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ct,
                aad: entitlement_id.as_bytes(),
            },
        )
        .map_err(|_| {
            AppError::Internal("product key cannot be decrypted (wrong KEY_ENCRYPTION_KEY?)".into())
        })?;
    String::from_utf8(plain).map_err(AppError::internal)
}

/// A stored product key as rotation reads it: (row id, entitlement id, key id, nonce,
/// ciphertext).
type Stored = (Uuid, Uuid, String, Vec<u8>, Vec<u8>);

/// What [`rotate`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rows re-encrypted under the ring's current key.
    pub rotated: u64,
    /// Rows left under a key the ring does not hold (cannot be read until it is put back).
    pub unreadable: u64,
}

/// Re-encrypts every product key not under the ring's current key, `batch` rows per
/// transaction (locked, skipping rows another rotation holds), until none is left. Safe while
/// the api serves: a reveal reads a row under its old key or its new one, both in the ring.
pub async fn rotate(conn: &mut PgConn, ring: &Keyring, batch: i64) -> AppResult<Rotation> {
    use diesel::prelude::*;
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let (current, _) = ring.current();
    let older: Vec<String> = ring
        .ids()
        .into_iter()
        .filter(|i| *i != current)
        .map(str::to_owned)
        .collect();
    let mut done = Rotation::default();
    loop {
        let older = older.clone();
        let moved = conn
            .transaction::<u64, AppError, _>(async |conn| {
                let rows: Vec<Stored> = product_keys::table
                    .filter(product_keys::key_id.eq_any(&older))
                    .order(product_keys::id)
                    .limit(batch)
                    .for_update()
                    .skip_locked()
                    .select((
                        product_keys::id,
                        product_keys::entitlement_id,
                        product_keys::key_id,
                        product_keys::nonce,
                        product_keys::ciphertext,
                    ))
                    .load(&mut *conn)
                    .await?;
                for (id, entitlement_id, key_id, nonce, ct) in &rows {
                    let plain = decrypt(ring, *entitlement_id, key_id, nonce, ct)?;
                    let (new_id, nonce, ct) = encrypt(ring, *entitlement_id, &plain)?;
                    diesel::update(product_keys::table.find(id))
                        .set((
                            product_keys::key_id.eq(new_id),
                            product_keys::nonce.eq(nonce),
                            product_keys::ciphertext.eq(ct),
                        ))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(rows.len() as u64)
            })
            .await?;
        done.rotated += moved;
        if moved == 0 {
            break;
        }
    }
    let known: Vec<String> = ring.ids().into_iter().map(str::to_owned).collect();
    done.unreadable = product_keys::table
        .filter(product_keys::key_id.ne_all(known))
        .count()
        .get_result::<i64>(conn)
        .await? as u64;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_bound_to_their_row() {
        let ring = Keyring::single("a", [7u8; 32]);
        let id = Uuid::now_v7();
        let key = generate();
        assert_eq!(key.len(), 29);
        let (key_id, nonce, ct) = encrypt(&ring, id, &key).unwrap();
        assert_eq!(key_id, "a");
        assert!(!ct.windows(5).any(|w| w == &key.as_bytes()[..5]));
        assert_eq!(decrypt(&ring, id, "a", &nonce, &ct).unwrap(), key);
        assert!(decrypt(&ring, Uuid::now_v7(), "a", &nonce, &ct).is_err());
        let other = Keyring::single("a", [8u8; 32]);
        assert!(decrypt(&other, id, "a", &nonce, &ct).is_err());
        let err = decrypt(&ring, id, "gone", &nonce, &ct).unwrap_err();
        assert!(format!("{err:?}").contains("`gone`"), "{err:?}");
    }
}

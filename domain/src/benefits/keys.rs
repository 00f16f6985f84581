//! Product keys: generated when a package is paid, stored encrypted (AES-256-GCM, the
//! entitlement id as associated data so a ciphertext cannot be moved to another row), and
//! decrypted only to answer `revealProductKey`. The plain key exists only in a reveal
//! response: it is never logged or audited.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;
use uuid::Uuid;

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

pub fn encrypt(
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

pub fn decrypt(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_bound_to_their_row() {
        let master = [7u8; 32];
        let id = Uuid::now_v7();
        let key = generate();
        assert_eq!(key.len(), 29);
        let (nonce, ct) = encrypt(&master, id, &key).unwrap();
        assert!(!ct.windows(5).any(|w| w == &key.as_bytes()[..5]));
        assert_eq!(decrypt(&master, id, &nonce, &ct).unwrap(), key);
        assert!(decrypt(&master, Uuid::now_v7(), &nonce, &ct).is_err());
        assert!(decrypt(&[8u8; 32], id, &nonce, &ct).is_err());
    }
}

//! GGUF reader and writer tests: round trips, and every malformed-file case
//! refused with an error naming the file, tensor or key.

use super::write::GgufWriter;
use super::*;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn small() -> GgufWriter {
    GgufWriter::new()
        .meta("general.architecture", MetaValue::String("llama".into()))
        .meta("llama.block_count", MetaValue::U32(2))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::StringArray(vec!["a".into(), "b".into()]),
        )
        .meta("tokenizer.ggml.token_type", MetaValue::I32Array(vec![1, 3]))
        .tensor(
            "w",
            &[4, 2],
            QType::F32,
            f32_bytes(&[1., 2., 3., 4., 5., 6., 7., 8.]),
        )
        .tensor("n", &[4], QType::F32, f32_bytes(&[9., 8., 7., 6.]))
}

fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<GgufFile, GgufError>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    std::fs::write(&p, bytes).unwrap();
    let r = GgufFile::open(&p);
    (dir, r)
}

#[test]
fn round_trips_metadata_and_tensors() {
    let (_d, f) = open_bytes(&small().to_bytes());
    let f = f.unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(
        f.get_string_array("tokenizer.ggml.tokens").unwrap(),
        ["a", "b"]
    );
    assert_eq!(
        f.get_opt_i32_array("tokenizer.ggml.token_type").unwrap(),
        Some(&[1, 3][..])
    );
    assert_eq!(f.get_opt_u32("missing").unwrap(), None);
    let w = f.tensor("w").unwrap();
    assert_eq!((w.rows, w.cols), (2, 4));
    assert_eq!(w.row_bytes(1), &f32_bytes(&[5., 6., 7., 8.])[..]);
    let n = f.tensor("n").unwrap();
    assert_eq!((n.rows, n.cols), (1, 4));
}

#[test]
fn typed_getters_name_the_key() {
    let (_d, f) = open_bytes(&small().to_bytes());
    let f = f.unwrap();
    let e = f.get_u32("general.architecture").unwrap_err().to_string();
    assert!(
        e.contains("general.architecture") && e.contains("string"),
        "{e}"
    );
    let e = f.get_str("nope").unwrap_err().to_string();
    assert!(e.contains("`nope` is missing"), "{e}");
    let e = f.tensor("absent").unwrap_err().to_string();
    assert!(e.contains("tensor `absent` not found"), "{e}");
}

#[test]
fn rejects_bad_magic_and_versions() {
    let mut b = small().to_bytes();
    b[0] = b'X';
    assert!(matches!(open_bytes(&b).1, Err(GgufError::BadMagic { .. })));
    let b = small().version(4).to_bytes();
    let e = open_bytes(&b).1.unwrap_err();
    assert!(
        matches!(e, GgufError::UnsupportedVersion { version: 4, .. }),
        "{e}"
    );
    assert!(matches!(
        open_bytes(b"GG").1,
        Err(GgufError::BadMagic { .. })
    ));
}

#[test]
fn rejects_truncated_files_naming_the_tensor() {
    let b = small().to_bytes();
    let e = open_bytes(&b[..b.len() - 3]).1.unwrap_err();
    match e {
        GgufError::TruncatedTensor { tensor, .. } => assert_eq!(tensor, "n"),
        other => panic!("unexpected {other}"),
    }
    // Cut inside the header: a clean error, not a panic or a huge allocation.
    for cut in [10, 30, 60, 90, 120] {
        assert!(open_bytes(&b[..cut]).1.is_err());
    }
}

#[test]
fn rejects_unsupported_types_naming_the_tensor() {
    let mut b = small().to_bytes();
    // Patch tensor `n`'s type id (F32 = 0) to Q4_0 (2): find its entry.
    let name = b"\x01\x00\x00\x00\x00\x00\x00\x00n";
    let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let type_at = at + 4 + 8; // n_dims u32, one dim u64
    b[type_at..type_at + 4].copy_from_slice(&2u32.to_le_bytes());
    let e = open_bytes(&b).1.unwrap_err();
    assert!(
        matches!(e, GgufError::UnsupportedType { ref tensor, type_name: "Q4_0", .. } if tensor == "n"),
        "{e}"
    );
    assert!(e.to_string().contains("`n`"));
}

#[test]
fn rejects_hostile_lengths_without_allocating() {
    let mut b = small().to_bytes();
    // The metadata count sits at bytes 16..24.
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(open_bytes(&b).1, Err(GgufError::Corrupt { .. })));
}

// Shared by tests that need the bitnet-25 twin (included with `include!`).
use tern_runtime::gguf::Gguf;

fn data(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// Rebuilds the bitnet-25 twin from its stored header + tails and the i2_s file, checking SHA-256.
pub fn bitnet25_twin() -> Vec<u8> {
    use sha2::Digest;
    let base = std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap();
    let g = Gguf::parse(&base).unwrap();
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("tiny-trained.bitnet25.json")).unwrap()).unwrap();
    let mut out = std::fs::read(data("tiny-trained.bitnet25.head")).unwrap();
    let ds = j["data_start"].as_u64().unwrap() as usize;
    assert_eq!(out.len(), ds);
    out.resize(j["bytes"].as_u64().unwrap() as usize, 0);
    for t in j["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let off = ds + t["offset"].as_u64().unwrap() as usize;
        let n = t["nbytes"].as_u64().unwrap() as usize;
        let src = g.tensor(name).unwrap_or_else(|| panic!("{name} missing in the i2_s file"));
        out[off..off + n].copy_from_slice(&src.data[..n]);
        if let Some(h) = t["tail_hex"].as_str() {
            let tail: Vec<u8> =
                (0..32).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()).collect();
            out[off + n - 32..off + n].copy_from_slice(&tail);
        }
    }
    let sha = sha2::Sha256::digest(&out);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, j["sha256"].as_str().unwrap(), "rebuilt twin differs from the fixture");
    out
}


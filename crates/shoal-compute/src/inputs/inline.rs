//! `inline` inputs: an RFC 2397 `data:` URL, or plain text, written to a file.

use std::path::Path;

use base64::Engine as _;
use shoal_executors::PreparedInput;
use shoal_types::InputSource;

use super::{InputError, file_slot};

pub(super) fn stage(
    i: usize,
    input: &InputSource,
    staging: &Path,
) -> Result<PreparedInput, InputError> {
    let url = input.source.str_param("URL").ok_or_else(|| {
        InputError::User(format!(
            "inline input {}: Params.URL is required (a data: URL or text)",
            input.target
        ))
    })?;
    let bytes = decode_data_url(url)
        .map_err(|e| InputError::User(format!("inline input {}: {e}", input.target)))?;
    let path = file_slot(i, &input.target, "input", staging)?;
    std::fs::write(&path, bytes)
        .map_err(|e| InputError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(PreparedInput {
        host_path: path,
        target: input.target.clone(),
        read_write: false,
    })
}

/// Decodes `data:[<mediatype>][;base64],<data>`; text without the `data:` prefix is returned as is.
fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(url.as_bytes().to_vec());
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or("data URL has no ',' between its media type and its data")?;
    if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD
            // Data URLs in YAML files are often folded over several lines.
            .decode(
                data.chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>(),
            )
            .map_err(|e| format!("data URL is not valid base64: {e}"))
    } else {
        Ok(percent_decode(data))
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode_base64_and_plain_forms() {
        assert_eq!(
            decode_data_url("data:application/wasm;base64,AGFzbQ==").unwrap(),
            b"\0asm"
        );
        assert_eq!(
            decode_data_url("data:,hello%20world").unwrap(),
            b"hello world"
        );
        assert_eq!(decode_data_url("just text").unwrap(), b"just text");
        assert!(
            decode_data_url("data:;base64,@@@")
                .unwrap_err()
                .contains("base64")
        );
    }
}

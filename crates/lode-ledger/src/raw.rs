//! The framing of `GET /v1/ledger/raw` (served by gateways and validators,
//! read by `lode ledger verify|show --from URL`): per block, a 4-byte
//! big-endian length and the block's canonical bytes, then a 4-byte length and
//! its commit certificate's canonical bytes (length 0: no certificate, as on a
//! single-validator chain).

/// Appends one block's frame.
pub fn push_frame(out: &mut Vec<u8>, block: &[u8], certificate: Option<&[u8]>) {
    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
    out.extend_from_slice(block);
    let cert = certificate.unwrap_or_default();
    out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
    out.extend_from_slice(cert);
}

/// Why a page does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("truncated frame after {0} blocks")]
    Truncated(usize),
}

/// One block's frame: its bytes and its certificate's, if any.
pub type Frame = (Vec<u8>, Option<Vec<u8>>);

/// Splits a page into frames.
pub fn split_frames(mut rest: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>, FrameError> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(FrameError::Truncated(n))?;
        let len = u32::from_be_bytes(*len) as usize;
        let bytes = tail.get(..len).ok_or(FrameError::Truncated(n))?;
        *rest = &tail[len..];
        Ok(bytes.to_vec())
    };
    while !rest.is_empty() {
        let block = take(&mut rest, out.len())?;
        let cert = take(&mut rest, out.len())?;
        out.push((block, (!cert.is_empty()).then_some(cert)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut page = Vec::new();
        push_frame(&mut page, b"block0", None);
        push_frame(&mut page, b"block1", Some(b"cert1"));
        let frames = split_frames(&page).unwrap();
        assert_eq!(
            frames,
            vec![
                (b"block0".to_vec(), None),
                (b"block1".to_vec(), Some(b"cert1".to_vec()))
            ]
        );
        for cut in 1..page.len() {
            if cut == 14 {
                continue; // a whole first frame
            }
            assert!(split_frames(&page[..cut]).is_err(), "cut at {cut}");
        }
    }
}

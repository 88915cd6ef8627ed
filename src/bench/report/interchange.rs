//! Latency histograms as text, so that reports taken apart can be merged
//! exactly.
//!
//! Percentiles cannot be averaged: the p99 of two runs is not the mean of
//! their p99s. What can be combined is the histogram itself (every bucket's
//! count added), so each report carries its histograms in HdrHistogram's
//! standard interchange encoding (V2, deflate-compressed, then base64: what
//! the Java, C, Go and Rust HdrHistogram libraries all read, and what
//! `HistogramLogProcessor` prints). `bench --processes` merges its
//! processes' reports this way, and `bench merge` the reports of several
//! machines, so the two take the same path.

use std::io;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// The histogram in V2 deflate encoding, as base64 text.
///
/// # Errors
/// If the histogram cannot be serialized (it always can; the encoder's
/// errors are passed on rather than unwrapped).
pub fn encode(histogram: &Histogram<u64>) -> io::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|e| io::Error::other(format!("encoding a histogram: {e:?}")))?;
    Ok(STANDARD.encode(bytes))
}

/// Reads a histogram written by [`encode`] (or by any HdrHistogram library).
///
/// # Errors
/// `InvalidData` if the text is not base64 or not a V2 histogram.
pub fn decode(text: &str) -> io::Result<Histogram<u64>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| bad(format!("a histogram that is not base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| bad(format!("a histogram that does not decode: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_merges_exactly() {
        let mut a = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut b = a.clone();
        for v in 1..=1000 {
            a.record(v).unwrap();
        }
        for v in 0..10 {
            b.record(1_000_000 + v).unwrap();
        }
        let a2 = decode(&encode(&a).unwrap()).unwrap();
        assert_eq!(a2, a);
        let mut merged = a2;
        merged.add(decode(&encode(&b).unwrap()).unwrap()).unwrap();
        assert_eq!(merged.len(), 1010);
        // The merged p99.9 is in b's range: no average of percentiles could say so.
        assert!(merged.value_at_quantile(0.999) >= 1_000_000);
        assert!(decode("not base64!").is_err());
        assert!(decode("aGVsbG8=").is_err());
    }
}

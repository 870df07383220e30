//! Tiny data-parallel helpers on `std::thread::scope` (no thread pool crate).

use std::num::NonZeroUsize;

/// Worker threads to use for large batches: the available cores, at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 8)
}

/// Calls `f(offset, chunk)` on disjoint chunks of `out`, in parallel when
/// `out` has at least `min_parallel` elements.
pub fn for_each_chunk_mut<T: Send>(
    out: &mut [T],
    min_parallel: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let n = out.len();
    let t = threads();
    if n < min_parallel || t == 1 || n < 2 {
        f(0, out);
        return;
    }
    let chunk = n.div_ceil(t);
    std::thread::scope(|s| {
        for (i, c) in out.chunks_mut(chunk).enumerate() {
            let f = &f;
            s.spawn(move || f(i * chunk, c));
        }
    });
}

/// Maps `input` to a new vector, in parallel when large.
pub fn map<I: Sync, O: Send + Default + Clone>(
    input: &[I],
    min_parallel: usize,
    f: impl Fn(&I) -> O + Sync,
) -> Vec<O> {
    let mut out = vec![O::default(); input.len()];
    for_each_chunk_mut(&mut out, min_parallel, |off, chunk| {
        for (j, o) in chunk.iter_mut().enumerate() {
            *o = f(&input[off + j]);
        }
    });
    out
}

//! Checks of untrusted input before it sizes anything: `config.json` values against sane
//! bounds and against the safetensors tensors present, safetensors headers against their
//! file, and weights that cannot be quantized. Every failure is one line naming the file,
//! the key or tensor, the value and what it contradicts.

use rayon::prelude::*;

/// The first non-finite weight of a chunk of rows (`row_len` wide) as (row, column, value).
/// The quantizers take a block's scale from its largest magnitude, so one NaN or infinity
/// would silently poison the whole block (32 to 256 weights).
pub fn first_non_finite(values: &[f32], row_len: usize) -> Option<(usize, usize, f32)> {
    values
        .par_chunks(row_len)
        .enumerate()
        .find_first(|(_, row)| row.iter().any(|x| !x.is_finite()))
        .map(|(r, row)| {
            let c = row.iter().position(|x| !x.is_finite()).expect("found");
            (r, c, row[c])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_finite_weight() {
        let mut v = vec![0.5f32; 64];
        assert_eq!(first_non_finite(&v, 16), None);
        v[40] = f32::INFINITY;
        v[50] = f32::NAN;
        assert_eq!(first_non_finite(&v, 16), Some((2, 8, f32::INFINITY)));
    }
}

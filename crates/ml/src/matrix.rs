//! A dense, row-major matrix of f64: the prepared features every algorithm reads.

use serde::{Deserialize, Serialize};

/// A dense matrix of rows, row-major.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// How many rows.
    pub rows: usize,
    /// How many columns.
    pub columns: usize,
    /// The values, row after row.
    pub values: Vec<f64>,
}

impl Matrix {
    /// A matrix of zeros.
    pub fn new(rows: usize, columns: usize) -> Matrix {
        Matrix { rows, columns, values: vec![0.0; rows * columns] }
    }

    /// A matrix of these rows (all of the first row's length).
    pub fn from_rows(rows: &[Vec<f64>]) -> Matrix {
        let columns = rows.first().map_or(0, Vec::len);
        Matrix { rows: rows.len(), columns, values: rows.iter().flatten().copied().collect() }
    }

    /// One row.
    pub fn row(&self, row: usize) -> &[f64] {
        &self.values[row * self.columns..(row + 1) * self.columns]
    }

    /// One row, to change.
    pub fn row_mut(&mut self, row: usize) -> &mut [f64] {
        &mut self.values[row * self.columns..(row + 1) * self.columns]
    }

    /// One value.
    pub fn get(&self, row: usize, column: usize) -> f64 {
        self.values[row * self.columns + column]
    }

    /// The rows at the given indices, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Matrix {
        let mut values = Vec::with_capacity(indices.len() * self.columns);
        for index in indices {
            values.extend_from_slice(self.row(*index));
        }
        Matrix { rows: indices.len(), columns: self.columns, values }
    }
}

/// `out = a · bᵀ`: every row of `a` (`a_rows` × `columns`, row-major) dotted with every row of `b` (`b_rows` ×
/// `columns`), into `out` (`a_rows` × `b_rows`, row-major). Runs on matrixmultiply's BLIS-style kernels, which pick
/// AVX/FMA at run time — the same speed class as the BLAS scikit-learn calls.
pub fn multiply_by_transpose(a: &[f64], a_rows: usize, b: &[f64], b_rows: usize, columns: usize, out: &mut [f64]) {
    assert!(a.len() >= a_rows * columns && b.len() >= b_rows * columns && out.len() >= a_rows * b_rows);
    if a_rows == 0 || b_rows == 0 {
        return;
    }
    if columns == 0 {
        out[..a_rows * b_rows].fill(0.0);
        return;
    }
    // SAFETY: the assertion above proves every element dgemm reads (a: a_rows × columns with strides (columns, 1);
    // bᵀ: columns × b_rows with strides (1, columns)) and writes (out: a_rows × b_rows with strides (b_rows, 1)) is
    // inside its slice; `out` is borrowed mutably, so it aliases neither input, and its strides never overlap.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::dgemm(
            a_rows,
            columns,
            b_rows,
            1.0,
            a.as_ptr(),
            columns as isize,
            1,
            b.as_ptr(),
            1,
            columns as isize,
            0.0,
            out.as_mut_ptr(),
            b_rows as isize,
            1,
        );
    }
}

/// The dot product of two equally long slices, summed in four independent lanes so the loop vectorises (one
/// running sum must be added in order, which stops the compiler).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let (a_chunks, b_chunks) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..4 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Solves the symmetric positive definite system `a x = b` by Cholesky decomposition; None if `a` is singular.
pub fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut lower = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j];
            for k in 0..j {
                sum -= lower[i * n + k] * lower[j * n + k];
            }
            if i == j {
                if sum <= 1e-12 {
                    return None;
                }
                lower[i * n + i] = sum.sqrt();
            } else {
                lower[i * n + j] = sum / lower[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let sum: f64 = (0..i).map(|k| lower[i * n + k] * y[k]).sum();
        y[i] = (b[i] - sum) / lower[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let sum: f64 = (i + 1..n).map(|k| lower[k * n + i] * x[k]).sum();
        x[i] = (y[i] - sum) / lower[i * n + i];
    }
    Some(x)
}

/// A small, fast, seedable random number generator (SplitMix64), so that runs are reproducible.
#[derive(Clone, Debug)]
pub struct Random(u64);

impl Random {
    /// A generator seeded with `seed`: the same seed gives the same numbers.
    pub fn new(seed: u64) -> Random {
        Random(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..bound.
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = self.below(index + 1);
            items.swap(index, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = solve_spd(&a, &[6.0, 5.0], 2).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn random_numbers_repeat_for_a_seed() {
        let (mut a, mut b) = (Random::new(7), Random::new(7));
        assert_eq!((0..5).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
    }
}

//! NaN canonicalization at the points where a NaN's bits become observable.
//!
//! WebAssembly float arithmetic is deterministic except for the bit pattern
//! (sign and payload) of NaN results, which differs between CPUs (x86 makes
//! negative "default" NaNs, Arm positive ones, and they propagate payloads
//! differently). A unit can only *see* those bits by:
//!
//! * storing a float to memory (`f32.store`, `f64.store`);
//! * reinterpreting it as an integer (`i32.reinterpret_f32`, `i64.reinterpret_f64`);
//! * copying its sign (`f32.copysign`, `f64.copysign`: the second operand);
//! * moving it into a vector (`f32x4.splat`, `f32x4.replace_lane`, and f64x2),
//!   whose lanes integer vector ops can read bitwise.
//!
//! Everything else (comparisons, conversions to integers, arithmetic that
//! only produces more NaNs) behaves the same for every NaN. So instead of
//! canonicalizing after *every* float operation (wasmtime's
//! `cranelift_nan_canonicalization`, which makes float-heavy code about 5x
//! slower, see docs/bench/lode-sandbox.md), this pass rewrites the module to
//! replace a NaN by the canonical quiet NaN (`0x7fc00000` / `0x7ff8000000000000`)
//! right before each of those points. Vector float arithmetic results are
//! canonicalized right after the operation (vector lanes are observable
//! through any integer vector op). The rewritten module is what gets compiled;
//! its fuel, like its behaviour, is a pure function of the original bytes.
//!
//! The inserted sequences are straight-line and use fresh locals (one per
//! needed type), so they are valid anywhere, unreachable code included. They
//! cost fuel (eight or nine instructions) only where a float is stored,
//! reinterpreted, sign-copied or moved into a vector.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{CodeSection, Function, Ieee32, Ieee64, Instruction, ValType};
use wasmtime::wasmparser::{self, CompositeInnerType, Operator, Parser, Payload};

/// Names this rewrite in the semantics string. Bump it when the rewrite
/// changes what units observe or the fuel they use.
pub(crate) const NAN_REWRITE_VERSION: &str = "nan=canonical-when-observed/v1";

/// The source of this pass: hashed into the compiled-module cache key, so
/// any change to the rewrite invalidates cached artifacts even if someone
/// forgets to bump [`NAN_REWRITE_VERSION`].
pub(crate) const NAN_REWRITE_SOURCE: &str = include_str!("nan.rs");

const CANON_F32: u32 = 0x7fc0_0000;
const CANON_F64: u64 = 0x7ff8_0000_0000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    /// `f32.store`: reinterpret, canonicalize as an integer, `i32.store`.
    StoreF32,
    /// `f64.store`: reinterpret, canonicalize as an integer, `i64.store`.
    StoreF64,
    /// Canonicalize the integer result of `i32.reinterpret_f32`.
    AfterReinterpretF32,
    /// Canonicalize the integer result of `i64.reinterpret_f64`.
    AfterReinterpretF64,
    /// Canonicalize the f32 on top of the stack before the operator.
    F32Before,
    /// Canonicalize the f64 on top of the stack before the operator.
    F64Before,
    /// Canonicalize the f32x4 result after the operator.
    F32x4After,
    /// Canonicalize the f64x2 result after the operator.
    F64x2After,
}

fn fix_for(op: &Operator<'_>) -> Option<Fix> {
    use Operator as O;
    Some(match op {
        O::F32Store { .. } => Fix::StoreF32,
        O::F64Store { .. } => Fix::StoreF64,
        O::I32ReinterpretF32 => Fix::AfterReinterpretF32,
        O::I64ReinterpretF64 => Fix::AfterReinterpretF64,
        O::F32Copysign | O::F32x4Splat | O::F32x4ReplaceLane { .. } => Fix::F32Before,
        O::F64Copysign | O::F64x2Splat | O::F64x2ReplaceLane { .. } => Fix::F64Before,
        O::F32x4Add
        | O::F32x4Sub
        | O::F32x4Mul
        | O::F32x4Div
        | O::F32x4Sqrt
        | O::F32x4Min
        | O::F32x4Max
        | O::F32x4PMin
        | O::F32x4PMax
        | O::F32x4Ceil
        | O::F32x4Floor
        | O::F32x4Trunc
        | O::F32x4Nearest
        | O::F32x4DemoteF64x2Zero
        | O::F32x4RelaxedMadd
        | O::F32x4RelaxedNmadd
        | O::F32x4RelaxedMin
        | O::F32x4RelaxedMax => Fix::F32x4After,
        O::F64x2Add
        | O::F64x2Sub
        | O::F64x2Mul
        | O::F64x2Div
        | O::F64x2Sqrt
        | O::F64x2Min
        | O::F64x2Max
        | O::F64x2PMin
        | O::F64x2PMax
        | O::F64x2Ceil
        | O::F64x2Floor
        | O::F64x2Trunc
        | O::F64x2Nearest
        | O::F64x2PromoteLowF32x4
        | O::F64x2RelaxedMadd
        | O::F64x2RelaxedNmadd
        | O::F64x2RelaxedMin
        | O::F64x2RelaxedMax => Fix::F64x2After,
        _ => return None,
    })
}

/// Rewrite a (valid) module so that no NaN bit pattern other than the
/// canonical one can be observed. Custom sections (names, debug info) are
/// dropped: they do not affect execution.
pub(crate) fn canonicalize_observed_nans(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let mut type_params = Vec::new();
    let mut body_types = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    let group = group.map_err(|e| e.to_string())?;
                    for sub in group.into_types() {
                        type_params.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => f.params().len() as u32,
                            _ => 0,
                        });
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    body_types.push(ty.map_err(|e| e.to_string())?);
                }
            }
            _ => {}
        }
    }
    let mut rewriter = NanRewriter {
        type_params,
        body_types,
        next_body: 0,
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| e.to_string())?;
    Ok(module.finish())
}

struct NanRewriter {
    /// Parameter count of each type index.
    type_params: Vec<u32>,
    /// Type index of each defined function, in code-section order.
    body_types: Vec<u32>,
    next_body: usize,
}

impl NanRewriter {
    fn next_body_params(&mut self) -> Result<u32, ReencodeError<String>> {
        let ty = *self.body_types.get(self.next_body).ok_or_else(|| {
            ReencodeError::UserError("more function bodies than functions".into())
        })?;
        self.next_body += 1;
        self.type_params
            .get(ty as usize)
            .copied()
            .ok_or_else(|| ReencodeError::UserError(format!("function type {ty} out of range")))
    }
}

impl Reencode for NanRewriter {
    type Error = String;

    fn parse_custom_section(
        &mut self,
        _module: &mut wasm_encoder::Module,
        _section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        let params = self.next_body_params()?;

        // Which scratch locals does this body need?
        let (mut need32, mut need64, mut needv) = (false, false, false);
        let (mut needi32, mut needi64) = (false, false);
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            match fix_for(&reader.read()?) {
                Some(Fix::StoreF32 | Fix::AfterReinterpretF32) => needi32 = true,
                Some(Fix::StoreF64 | Fix::AfterReinterpretF64) => needi64 = true,
                Some(Fix::F32Before) => need32 = true,
                Some(Fix::F64Before) => need64 = true,
                Some(Fix::F32x4After | Fix::F64x2After) => needv = true,
                None => {}
            }
        }

        let mut locals = Vec::new();
        let mut declared: u32 = 0;
        for pair in body.get_locals_reader()? {
            let (count, ty) = pair?;
            declared = declared
                .checked_add(count)
                .ok_or_else(|| ReencodeError::UserError("too many locals".into()))?;
            locals.push((count, self.val_type(ty)?));
        }
        let mut next = params
            .checked_add(declared)
            .ok_or_else(|| ReencodeError::UserError("too many locals".into()))?;
        let mut scratch = |needed: bool, ty: ValType, locals: &mut Vec<(u32, ValType)>| {
            needed.then(|| {
                locals.push((1, ty));
                next += 1;
                next - 1
            })
        };
        let t32 = scratch(need32, ValType::F32, &mut locals);
        let t64 = scratch(need64, ValType::F64, &mut locals);
        let tv = scratch(needv, ValType::V128, &mut locals);
        let ti32 = scratch(needi32, ValType::I32, &mut locals);
        let ti64 = scratch(needi64, ValType::I64, &mut locals);

        let mut f = Function::new(locals);
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            let fix = fix_for(&op);
            // Stores become integer stores of the canonicalized bits.
            match (&op, ti32, ti64) {
                (Operator::F32Store { memarg }, Some(t), _) => {
                    f.instruction(&Instruction::I32ReinterpretF32);
                    canon_i32_bits(&mut f, t);
                    f.instruction(&Instruction::I32Store(self.mem_arg(*memarg)?));
                    continue;
                }
                (Operator::F64Store { memarg }, _, Some(t)) => {
                    f.instruction(&Instruction::I64ReinterpretF64);
                    canon_i64_bits(&mut f, t);
                    f.instruction(&Instruction::I64Store(self.mem_arg(*memarg)?));
                    continue;
                }
                _ => {}
            }
            match (fix, t32, t64) {
                (Some(Fix::F32Before), Some(t), _) => canon_f32(&mut f, t),
                (Some(Fix::F64Before), _, Some(t)) => canon_f64(&mut f, t),
                _ => {}
            }
            f.instruction(&self.instruction(op)?);
            match (fix, tv, ti32, ti64) {
                (Some(Fix::F32x4After), Some(t), _, _) => canon_v128(&mut f, t, false),
                (Some(Fix::F64x2After), Some(t), _, _) => canon_v128(&mut f, t, true),
                (Some(Fix::AfterReinterpretF32), _, Some(t), _) => canon_i32_bits(&mut f, t),
                (Some(Fix::AfterReinterpretF64), _, _, Some(t)) => canon_i64_bits(&mut f, t),
                _ => {}
            }
        }
        code.function(&f);
        Ok(())
    }
}

// Stores and reinterprets work on the integer bits (branch-free `select`
// on integers is cheaper than on floats), in eight instructions after the
// reinterpret:
//   local.tee $t; const CANON; local.get $t; const 1; shl; const MAX; le_u; select
// `bits << 1` drops the sign; it is at most `MAX` (infinity's exponent, zero
// mantissa, shifted) exactly when the value is not a NaN.
//
// The other (rare) points use the float form, six instructions:
//   local.tee $t; const CANON; local.get $t; local.get $t; eq; select
// `x == x` is false exactly for NaN, so `select` keeps `x` unless it is a NaN.

/// Canonicalize the f32 bit pattern (an i32) on top of the stack.
fn canon_i32_bits(f: &mut Function, t: u32) {
    f.instruction(&Instruction::LocalTee(t))
        .instruction(&Instruction::I32Const(CANON_F32 as i32))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::I32Const(1))
        .instruction(&Instruction::I32Shl)
        .instruction(&Instruction::I32Const(0xff00_0000_u32 as i32))
        .instruction(&Instruction::I32LeU)
        .instruction(&Instruction::Select);
}

/// Canonicalize the f64 bit pattern (an i64) on top of the stack.
fn canon_i64_bits(f: &mut Function, t: u32) {
    f.instruction(&Instruction::LocalTee(t))
        .instruction(&Instruction::I64Const(CANON_F64 as i64))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::I64Const(1))
        .instruction(&Instruction::I64Shl)
        .instruction(&Instruction::I64Const(0xffe0_0000_0000_0000_u64 as i64))
        .instruction(&Instruction::I64LeU)
        .instruction(&Instruction::Select);
}

/// `x -> isnan(x) ? canonical : x` for the f32 on top of the stack.
fn canon_f32(f: &mut Function, t: u32) {
    f.instruction(&Instruction::LocalTee(t))
        .instruction(&Instruction::F32Const(Ieee32::new(CANON_F32)))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::F32Eq)
        .instruction(&Instruction::Select);
}

/// `x -> isnan(x) ? canonical : x` for the f64 on top of the stack.
fn canon_f64(f: &mut Function, t: u32) {
    f.instruction(&Instruction::LocalTee(t))
        .instruction(&Instruction::F64Const(Ieee64::new(CANON_F64)))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::F64Eq)
        .instruction(&Instruction::Select);
}

/// Lane-wise `isnan(x) ? canonical : x` for the vector on top of the stack
/// (`v128.bitselect` takes lanes of `x` where the `x == x` mask is set).
fn canon_v128(f: &mut Function, t: u32, f64x2: bool) {
    let canon: u128 = if f64x2 {
        u128::from(CANON_F64) | (u128::from(CANON_F64) << 64)
    } else {
        (0..4).fold(0u128, |acc, lane| {
            acc | (u128::from(CANON_F32) << (32 * lane))
        })
    };
    f.instruction(&Instruction::LocalTee(t))
        .instruction(&Instruction::V128Const(canon as i128))
        .instruction(&Instruction::LocalGet(t))
        .instruction(&Instruction::LocalGet(t))
        .instruction(if f64x2 {
            &Instruction::F64x2Eq
        } else {
            &Instruction::F32x4Eq
        })
        .instruction(&Instruction::V128Bitselect);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_is_valid_and_idempotent_in_behaviour() {
        let wasm = wat::parse_str(
            r#"(module
              (memory (export "memory") 1)
              (func $f (param f64) (result f64) (local i32)
                (f64.store (i32.const 0) (f64.div (local.get 0) (local.get 0)))
                (f64.copysign (f64.const 1) (f64.load (i32.const 0))))
              (func (export "_start")
                (drop (call $f (f64.const 0)))
                (drop (i64.reinterpret_f64 (f64.const nan:0x1234)))
                (drop (f32x4.add (f32x4.splat (f32.const -nan)) (v128.const i32x4 0 0 0 0))))
              (@custom "junk" "x"))"#,
        )
        .unwrap();
        let out = canonicalize_observed_nans(&wasm).unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .unwrap();
        // Custom sections are gone; re-running the pass only adds more (no-op)
        // canonicalizations, still valid.
        assert!(!out.windows(4).any(|w| w == b"junk"));
        let twice = canonicalize_observed_nans(&out).unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&twice)
            .unwrap();
    }

    #[test]
    fn bodies_without_float_observations_are_unchanged() {
        let wasm = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "_start") (local i64)
                   (i64.store (i32.const 0) (i64.add (local.get 0) (i64.const 1)))))"#,
        )
        .unwrap();
        let out = canonicalize_observed_nans(&wasm).unwrap();
        assert_eq!(out, wasm, "no custom sections, nothing to fix: same bytes");
    }

    #[test]
    fn integer_nan_test_matches_is_nan() {
        // The `bits << 1 <= MAX` test used for stores, on the edge cases.
        let not_nan64 = |x: f64| (x.to_bits() << 1) <= 0xffe0_0000_0000_0000;
        let not_nan32 = |x: f32| (x.to_bits() << 1) <= 0xff00_0000;
        for x in [
            0.0,
            -0.0,
            1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            assert!(not_nan64(x), "{x}");
        }
        for bits in [
            0x7ff8_0000_0000_0000u64,
            0xfff8_0000_0000_0000,
            0x7ff0_0000_0000_0001,
            0xffff_ffff_ffff_ffff,
        ] {
            assert!(!not_nan64(f64::from_bits(bits)), "{bits:x}");
        }
        for x in [
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            1e-45,
        ] {
            assert!(not_nan32(x), "{x}");
        }
        for bits in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xffff_ffff] {
            assert!(!not_nan32(f32::from_bits(bits)), "{bits:x}");
        }
    }
}

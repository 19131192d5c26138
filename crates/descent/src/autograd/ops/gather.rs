//! Gather rows of a table by integer ids (an embedding lookup): `table: [V, D]`, ids of
//! any shape S → y: S + [D]; backward adds each row of ∂L/∂y into the table row it came
//! from (ids seen twice sum).

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Shape, B};

impl Tape {
    /// Rows `ids` of `table` (`[V, D]`), shaped `ids_shape + [D]`. Every id must be below V.
    pub fn gather(&mut self, store: &ParamStore, table: Var, ids: &[u32], ids_shape: &[usize]) -> Result<Var> {
        let ts = self.shape(table);
        if ts.rank() != 2 {
            return Err(Error::shape("gather", "a table [rows, width]", ts));
        }
        let (rows, width) = (ts.dims()[0], ts.dims()[1]);
        if ids_shape.iter().product::<usize>() != ids.len() {
            return Err(Error::shape("gather ids", format!("{} ids for shape {ids_shape:?}", ids_shape.iter().product::<usize>()), ids.len()));
        }
        if let Some((pos, id)) = ids.iter().enumerate().find(|(_, id)| **id as usize >= rows) {
            return Err(Error::shape("gather", format!("ids below {rows} (the table's rows)"), format!("id {id} at position {pos}")));
        }
        let mut dims = ids_shape.to_vec();
        dims.push(width);
        let rg = self.requires_grad(table);
        let out = self.push(Shape::new(&dims)?, Op::Gather { table }, rg);
        let node = self.node_mut(out);
        B::ints_write(&mut node.ints, ids);
        self.compute(store, out, |nodes, params, y, _| {
            B::gather_rows(y, value_of(nodes, params, table), &nodes[out.idx()].ints, width);
        });
        Ok(out)
    }
}

impl Tape {
    /// Rows of `table` (`[V, D]`) picked by the values of `ids` (token ids fed as
    /// numbers, any shape S) → `S + [D]`: each must be a whole number in `0..V`, else the
    /// error (naming `what()`, formatted only then) says which is not and where. The ids are written into the
    /// node's reused integer buffer, so a steady-state step allocates nothing.
    pub fn gather_by(&mut self, store: &ParamStore, table: Var, ids: Var, what: &dyn Fn() -> String) -> Result<Var> {
        let (ts, is) = (self.shape(table), self.shape(ids));
        if ts.rank() != 2 || is.rank() >= crate::tensor::Shape::MAX_RANK {
            return Err(Error::shape(what(), format!("a table [rows, width] and ids of at most {} axes", crate::tensor::Shape::MAX_RANK - 1), format!("{ts}, ids {is}")));
        }
        let (rows, width) = (ts.dims()[0], ts.dims()[1]);
        let mut dims = [0usize; crate::tensor::Shape::MAX_RANK];
        dims[..is.rank()].copy_from_slice(is.dims());
        dims[is.rank()] = width;
        let rg = self.requires_grad(table);
        let out = self.push(crate::tensor::Shape::new(&dims[..is.rank() + 1])?, Op::Gather { table }, rg);
        let mut ints = std::mem::take(&mut self.node_mut(out).ints);
        let bad = B::ints_from_values(&mut ints, &self.node(ids).value, rows);
        self.node_mut(out).ints = ints;
        if let Some((pos, v)) = bad {
            self.pop();
            let at: Vec<usize> = unflatten(pos, is.dims());
            return Err(Error::shape(what(), format!("whole-number ids in [0, {rows}) (the table's rows)"), format!("{v} at position {at:?} of the batch")));
        }
        self.compute(store, out, |nodes, params, y, _| {
            B::gather_rows(y, value_of(nodes, params, table), &nodes[out.idx()].ints, width);
        });
        Ok(out)
    }
}

/// The index of element `flat` in a tensor of `dims`.
fn unflatten(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut at = vec![0; dims.len()];
    for (a, d) in at.iter_mut().zip(dims).rev() {
        *a = flat % d.max(&1);
        flat /= d.max(&1);
    }
    at
}

pub(super) fn backward(ctx: &mut Backward, i: usize, table: Var) {
    let width = ctx.nodes[table.idx()].shape.dims()[1];
    let ids = std::mem::take(&mut ctx.nodes[i].ints);
    ctx.with_own(i, |ctx, g, _| {
        ctx.with_grad(table, |_, _, gt| B::scatter_add_rows(gt, g, &ids, width));
    });
    ctx.nodes[i].ints = ids;
}

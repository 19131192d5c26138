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

pub(super) fn backward(ctx: &mut Backward, i: usize, table: Var) {
    let width = ctx.nodes[table.idx()].shape.dims()[1];
    let ids = std::mem::take(&mut ctx.nodes[i].ints);
    ctx.with_own(i, |ctx, g, _| {
        ctx.with_grad(table, |_, _, gt| B::scatter_add_rows(gt, g, &ids, width));
    });
    ctx.nodes[i].ints = ids;
}

"""Plans and reports: what each output holds, tensor by tensor, as a table or as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import formats

from .archs.base import OutTensor


@dataclass
class Row:
    name: str
    shape: list[int]  # GGML order (ne0 first), as llama.cpp prints it
    type: str
    reason: str
    bytes: int
    params: int


def plan_rows(tensors: list[OutTensor], target) -> list[Row]:
    by_name = {t.name: t for t in tensors}
    rows = []
    for name in target.order:
        t = by_name[name]
        qt = target.types[name]
        shape = target.shapes.get(name, t.shape)
        why = target.reasons.get(name, "")
        nbytes = t.rows * formats.row_size(qt, t.n_per_row)
        rows.append(Row(name, list(reversed(shape)), qt.name, why, nbytes, t.rows * t.n_per_row))
    return rows


def totals(rows: list[Row]) -> dict:
    nbytes = sum(r.bytes for r in rows)
    params = sum(r.params for r in rows)
    hist: dict[str, int] = {}
    for r in rows:
        hist[r.type] = hist.get(r.type, 0) + 1
    return {
        "tensors": len(rows),
        "parameters": params,
        "bytes": nbytes,
        "bits_per_weight": 8 * nbytes / params if params else 0.0,
        "types": dict(sorted(hist.items())),
    }


def plan_json(tensors, targets) -> list[dict]:
    out = []
    for target in targets:
        rows = plan_rows(tensors, target)
        out.append({
            "output": str(target.path),
            "recipe": target.label,
            "file_type": target.file_type,
            "totals": totals(rows),
            "tensors": [asdict(r) for r in rows],
        })
    return out


def print_plan(console, tensors, targets) -> None:
    from rich.table import Table

    for target in targets:
        rows = plan_rows(tensors, target)
        tot = totals(rows)
        table = Table(title=f"{target.path.name}  ({target.label})", title_justify="left")
        for col, just in (("tensor", "left"), ("shape", "right"), ("type", "left"), ("why", "left"), ("bytes", "right")):
            table.add_column(col, justify=just)
        for r in rows:
            table.add_row(r.name, "x".join(map(str, r.shape)), r.type, r.reason, f"{r.bytes:,}")
        console.print(table)
        hist = ", ".join(f"{k} {v}" for k, v in tot["types"].items())
        console.print(
            f"{tot['tensors']} tensors, {tot['parameters']:,} weights, {tot['bytes'] / 1e6:,.2f} MB, "
            f"{tot['bits_per_weight']:.3f} bits per weight ({hist})\n"
        )

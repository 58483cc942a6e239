"""Operator names that mean "quantized", spelled once (standard library only)."""

from __future__ import annotations

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Weighted layers computed on integers, as a file can hold them: the QOperator format (QLinearConv,
# QLinearMatMul, com.microsoft QGemm) and dynamic quantization (ConvInteger, MatMulInteger,
# com.microsoft MatMulIntegerToFloat).
INTEGER_LAYER_OPS = frozenset(
    {"QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat"}
)
# Any of these in a file means it is quantized already (QDQ, QOperator or dynamic quantization): the
# importer and quantization refuse such a file.
QUANTIZED_OPS = QDQ_OPS | INTEGER_LAYER_OPS | {"DynamicQuantizeLinear", "QLinearAdd", "QLinearMul"}

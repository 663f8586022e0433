"""Corrections for views: options migra does not compare."""

from __future__ import annotations

from . import Correction


class ViewOptions(Correction):
    name = "views.options"
    fixes = "migra ignores view options such as security_invoker and security_barrier"

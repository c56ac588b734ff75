"""Inference backends behind one interface (activate -> infer -> deactivate); see registry.py."""

"""(world package; interface added below)"""

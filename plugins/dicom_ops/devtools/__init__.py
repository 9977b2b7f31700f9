"""Development tools: the DRAW server emulator, its threshold segmentation and
RTSTRUCT builder, the synthetic CT factory and the reference de-identification with
the deid library. Nothing in the runtime path imports this package (checked by
``.importlinter``); its web stack is the ``devtools`` extra.
"""

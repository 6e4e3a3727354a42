"""The attacks, one module per family, each written once against ``Oracle`` and ``Ops`` and registered with its
factory (the published defaults), label, flags, grammar words and test examples: ``pgd`` (FGSM, PGD L-inf/L2,
MIFGSM), ``cw`` (CW-L2), ``deepfool``, ``apgd`` (APGD-CE/DLR, APGD-T), ``square``."""

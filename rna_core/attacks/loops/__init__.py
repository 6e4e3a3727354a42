"""The nine attack loops, one module per family, each written once against ``Oracle`` and ``Ops``:
``pgd`` (FGSM, PGD L-inf/L2, MIFGSM), ``cw`` (CW-L2), ``deepfool``, ``apgd`` (APGD-CE/DLR, APGD-T), ``square``."""

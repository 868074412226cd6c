"""Other people's protocols, run with bezkit's parts: ``torchcfm2d``, the 2D benchmark of
torchcfm (Tong et al., TMLR 2024, Table 2; ``bezkit benchmark torchcfm-2d``)."""

"""The architecture families, one module each (importing a module registers its architectures).

- :mod:`zoo.models.abn`: Attention Branch Network (Fukui et al., CVPR 2019).
- :mod:`zoo.models.ltpa`: Learn To Pay Attention (Jetley et al., ICLR 2018).
- :mod:`zoo.models.multichannel`: multi-channel attention (Kimura & Tanaka, 2019).
- :mod:`zoo.models.plain`: backbones without attention (the baselines).
- :mod:`zoo.models.sfocus`: Sharpen Focus (Wang et al., ICCV 2019): a training objective on
  Grad-CAM for any single-label architecture, and CIFAR ResNets trained with it.
- :mod:`zoo.models.lba`: loss-based attention (Shi et al., IEEE TIP 2021): patch weights and
  logits from one linear layer, conv and capsule heads on stride-free backbones.
- :mod:`zoo.models.backbones`: the backbone registry (split into feature extractor and last
  stage, or stride-free trunks), picked by name.
- :mod:`zoo.models.layers`: building blocks shared by the families.
"""

from zoo.models import abn, lba, ltpa, multichannel, plain, sfocus  # noqa: F401

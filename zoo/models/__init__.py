"""The architecture families, one module each (importing a module registers its architectures).

- :mod:`zoo.models.abn`: Attention Branch Network (Fukui et al., CVPR 2019).
- :mod:`zoo.models.ltpa`: Learn To Pay Attention (Jetley et al., ICLR 2018).
- :mod:`zoo.models.layers`: building blocks shared by the families.
"""

from zoo.models import abn, ltpa  # noqa: F401

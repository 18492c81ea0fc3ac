# projects namespace (OpenMMLab plugin projects live here)

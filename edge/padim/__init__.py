"""PaDiM as pure, vectorised numpy: embed → streaming moments → Gaussian → Mahalanobis map."""

"""Battery health of electric vehicles: charge sessions, weekly State of Health, end of life."""

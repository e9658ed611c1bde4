"""cxbridge: one continuous customer experience across the helpdesk, the CRM and the engineering tracker."""

__version__ = "0.1.0"
